#!/usr/bin/env python3
# Fails when a source file with translatable strings is missing from
# po/POTFILES.in, or when POTFILES.in names a file that does not exist:
# either way the translations would silently fall out of step with the code.
#
# SPDX-License-Identifier: GPL-3.0-or-later

import os
import re
import sys

SCAN_DIRS = ('src', 'resources', 'data')

# String literals are blanked before comments are removed so that "/*" in a
# string cannot start a comment; comments go so that a doc comment naming
# N_() does not count as a use.
C_TOKENS = re.compile(r'"(?:\\.|[^"\\\n])*"|\'(?:\\.|[^\'\\\n])*\'|/\*.*?\*/|//[^\n]*', re.S)
C_KEYWORD = re.compile(r'(?<![A-Za-z0-9_])(?:_|N_|C_|NC_|Q_|ngettext|g_dngettext|g_dpgettext2|'
                       r'g_dcgettext)\s*\(')
UI_TRANSLATABLE = re.compile(r'translatable\s*=\s*["\'](?:yes|true|1)["\']', re.I)


def strip_c (text):
    def repl (m):
        tok = m.group (0)
        if tok.startswith ('"'):
            return '""'
        if tok.startswith ("'"):
            return "' '"
        # Keep line numbers stable for the report.
        return '\n' * tok.count ('\n') or ' '
    return C_TOKENS.sub (repl, text)


def c_lines (text):
    stripped = strip_c (text)
    return [i + 1 for i, line in enumerate (stripped.split ('\n')) if C_KEYWORD.search (line)]


def needs_translation (root, rel):
    path = os.path.join (root, rel)
    name = os.path.basename (rel)
    if not name.endswith (('.c', '.h', '.ui', '.blp', '.in', '.gschema.xml')):
        return None
    try:
        with open (path, encoding='utf-8') as f:
            text = f.read ()
    except UnicodeDecodeError:
        return None
    if name.endswith (('.c', '.h')):
        lines = c_lines (text)
        return 'line %d' % lines[0] if lines else None
    if name.endswith (('.ui', '.blp')):
        m = UI_TRANSLATABLE.search (text)
        return 'translatable="yes"' if m else None
    if rel.startswith ('data' + os.sep) and name.endswith ('.in'):
        return 'a data template'
    if name.endswith ('.gschema.xml') and 'gettext-domain' in text:
        return 'gettext-domain'
    return None


def read_potfiles (root):
    listed = []
    with open (os.path.join (root, 'po', 'POTFILES.in'), encoding='utf-8') as f:
        for line in f:
            line = line.strip ()
            if line and not line.startswith ('#'):
                listed.append (line)
    return listed


def main ():
    root = sys.argv[1] if len (sys.argv) > 1 else os.environ['GEMINI_KEYS_SOURCE_ROOT']
    listed = read_potfiles (root)
    problems = []

    dupes = sorted ({p for p in listed if listed.count (p) > 1})
    for p in dupes:
        problems.append ('po/POTFILES.in lists %s more than once' % p)
    for p in listed:
        if not os.path.isfile (os.path.join (root, p)):
            problems.append ('po/POTFILES.in lists %s, which does not exist' % p)

    found = 0
    for top in SCAN_DIRS:
        for dirpath, dirnames, filenames in os.walk (os.path.join (root, top)):
            dirnames[:] = sorted (d for d in dirnames if not d.startswith (('.', '_build')))
            for name in sorted (filenames):
                rel = os.path.relpath (os.path.join (dirpath, name), root)
                why = needs_translation (root, rel)
                if why is None:
                    continue
                found += 1
                if rel not in listed:
                    problems.append ('%s has translatable strings (%s) but is not in po/POTFILES.in'
                                     % (rel, why))

    if found == 0:
        problems.append ('no file with translatable strings found under %s: wrong source root?'
                         % ', '.join (SCAN_DIRS))

    for p in problems:
        print (p)
    print ('%d files with translatable strings, %d listed' % (found, len (listed)))
    return 1 if problems else 0


if __name__ == '__main__':
    sys.exit (main ())
