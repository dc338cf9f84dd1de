#!/usr/bin/env python3
# Checks the Flatpak manifest without building it (that needs Flathub):
# the app id and command match the rest of the project, the sandbox grants
# only what the app needs, and every local source it names exists.
#
# usage: check-flatpak.py MANIFEST APP_ID GUI_BINARY DESKTOP_FILE_IN
#
# SPDX-License-Identifier: GPL-3.0-or-later

import json
import os
import sys

# Holes that would make the sandbox pointless for an app that only needs
# the network and the Secret Service.
FORBIDDEN_PREFIXES = (
    '--filesystem=host',
    '--filesystem=host-os',
    '--filesystem=host-etc',
    '--filesystem=home',
    '--filesystem=~',
    '--filesystem=/',
    '--socket=session-bus',
    '--socket=system-bus',
    '--socket=x11',
    '--device=all',
    '--talk-name=org.freedesktop.Flatpak',
)
REQUIRED = (
    '--share=network',
    '--socket=wayland',
    '--socket=fallback-x11',
    '--share=ipc',
    '--device=dri',
    '--talk-name=org.freedesktop.secrets',
)


def local_paths (source):
    """The paths of one source entry that must exist next to the manifest."""
    if isinstance (source, str):
        # A bare string is a path to a JSON file holding the source.
        return [source]
    paths = []
    if 'path' in source:
        paths.append (source['path'])
    paths += source.get ('paths', [])
    return paths


def walk_modules (modules, problems, base):
    for m in modules:
        if isinstance (m, str):
            if not os.path.exists (os.path.join (base, m)):
                problems.append ('module file %s does not exist' % m)
            continue
        for s in m.get ('sources', []):
            for p in local_paths (s):
                if not os.path.exists (os.path.join (base, p)):
                    problems.append ('module %s: source path %s does not exist'
                                     % (m.get ('name'), p))
        walk_modules (m.get ('modules', []), problems, base)


def desktop_exec (path):
    with open (path, encoding='utf-8') as f:
        for line in f:
            if line.startswith ('Exec='):
                return line[len ('Exec='):].split ()[0]
    return None


def main ():
    manifest_path, app_id, gui_binary, desktop_in = sys.argv[1:5]
    with open (manifest_path, encoding='utf-8') as f:
        manifest = json.load (f)
    base = os.path.dirname (os.path.abspath (manifest_path))
    problems = []

    if manifest.get ('id', manifest.get ('app-id')) != app_id:
        problems.append ('id is %r, expected %r' % (manifest.get ('id'), app_id))
    if manifest.get ('command') != gui_binary:
        problems.append ('command is %r, expected the GUI binary %r'
                         % (manifest.get ('command'), gui_binary))
    exec_name = desktop_exec (desktop_in)
    if exec_name != gui_binary:
        problems.append ('the desktop file runs %r, not %r' % (exec_name, gui_binary))
    if manifest.get ('runtime') != 'org.gnome.Platform' or manifest.get ('sdk') != 'org.gnome.Sdk':
        problems.append ('runtime/sdk must be org.gnome.Platform/org.gnome.Sdk')
    if not str (manifest.get ('runtime-version', '')).strip ():
        problems.append ('runtime-version is missing')

    args = manifest.get ('finish-args', [])
    for a in args:
        for bad in FORBIDDEN_PREFIXES:
            if a == bad or a.startswith (bad + ':') or a.startswith (bad + '/'):
                problems.append ('finish-args grants %s' % a)
    for r in REQUIRED:
        if r not in args:
            problems.append ('finish-args lacks %s' % r)
    if len (set (args)) != len (args):
        problems.append ('finish-args has duplicates')

    modules = manifest.get ('modules', [])
    if not modules:
        problems.append ('no modules')
    else:
        app = modules[-1]
        if isinstance (app, str) or app.get ('buildsystem') != 'meson':
            problems.append ('the last module (the app) must be built with meson')
        elif not any (isinstance (s, dict) and s.get ('type') == 'dir' for s in app.get ('sources', [])):
            problems.append ('the app module must be built from the local source tree (type "dir")')
        else:
            dirs = [os.path.realpath (os.path.join (base, s['path']))
                    for s in app['sources'] if isinstance (s, dict) and s.get ('type') == 'dir']
            if not any (os.path.isfile (os.path.join (d, 'meson.build')) for d in dirs):
                problems.append ('the app\'s "dir" source holds no meson.build')
    walk_modules (modules, problems, base)

    for p in problems:
        print (p)
    return 1 if problems else 0


if __name__ == '__main__':
    sys.exit (main ())
