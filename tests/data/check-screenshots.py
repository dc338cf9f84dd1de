#!/usr/bin/env python3
# The metainfo points software centres at screenshots in the repository
# (raw URLs on the main branch, which cannot be fetched here). Checks that
# every such URL names a PNG that exists in this tree, so a renamed or
# forgotten screenshot shows up before a release rather than as a broken
# image in GNOME Software. Skipped (exit 77) until data/screenshots exists.
#
# usage: check-screenshots.py METAINFO_IN SOURCE_ROOT
#
# SPDX-License-Identifier: GPL-3.0-or-later

import os
import struct
import sys
import xml.etree.ElementTree as ET

RAW_PREFIX = 'https://raw.githubusercontent.com/geminikeys/gemini-keys/main/'
PNG_MAGIC = b'\x89PNG\r\n\x1a\n'
# AppStream asks for screenshots a software centre can show without upscaling.
MIN_WIDTH, MIN_HEIGHT = 620, 350


def png_size (path):
    with open (path, 'rb') as f:
        head = f.read (24)
    if len (head) < 24 or head[:8] != PNG_MAGIC or head[12:16] != b'IHDR':
        return None
    return struct.unpack ('>II', head[16:24])


def main ():
    metainfo, root = sys.argv[1:3]
    if not os.path.isdir (os.path.join (root, 'data', 'screenshots')):
        print ('data/screenshots does not exist yet')
        return 77

    problems = []
    images = [i.text.strip () for i in ET.parse (metainfo).getroot ().iter ('image')]
    if not images:
        problems.append ('the metainfo has no screenshots')
    for url in images:
        if not url.startswith (RAW_PREFIX):
            problems.append ('%s is not a file of the repository' % url)
            continue
        rel = url[len (RAW_PREFIX):]
        path = os.path.join (root, rel)
        if not os.path.isfile (path):
            problems.append ('%s: %s does not exist' % (url, rel))
            continue
        size = png_size (path)
        if size is None:
            problems.append ('%s is not a PNG image' % rel)
        elif size[0] < MIN_WIDTH or size[1] < MIN_HEIGHT:
            problems.append ('%s is %dx%d, smaller than %dx%d' % ((rel,) + size + (MIN_WIDTH, MIN_HEIGHT)))
        else:
            print ('%s: %dx%d' % ((rel,) + size))

    for p in problems:
        print (p)
    return 1 if problems else 0


if __name__ == '__main__':
    sys.exit (main ())
