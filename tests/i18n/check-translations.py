#!/usr/bin/env python3
# Extracts the current template from the sources listed in po/POTFILES.in,
# with the same keywords as the build's pot target (meson's 'glib' preset),
# and fails for every message a language of po/LINGUAS leaves untranslated
# or fuzzy, so a string added to the code without a translation is caught.
#
# SPDX-License-Identifier: GPL-3.0-or-later

import os
import re
import shutil
import subprocess
import sys
import tempfile

XGETTEXT_ARGS = [
    '--from-code=UTF-8',
    '--add-comments',
    '--keyword=_',
    '--keyword=N_',
    '--keyword=C_:1c,2',
    '--keyword=NC_:1c,2',
    '--keyword=g_dcgettext:2',
    '--keyword=g_dngettext:2,3',
    '--keyword=g_dpgettext2:2c,3',
    '--flag=N_:1:pass-c-format',
    '--flag=C_:2:pass-c-format',
    '--flag=NC_:2:pass-c-format',
    '--flag=g_dngettext:2:pass-c-format',
    '--flag=g_strdup_printf:1:c-format',
    '--flag=g_string_printf:2:c-format',
    '--flag=g_string_append_printf:2:c-format',
    '--flag=g_error_new:3:c-format',
    '--flag=g_set_error:4:c-format',
    '--flag=g_markup_printf_escaped:1:c-format',
    '--flag=g_log:3:c-format',
    '--flag=g_print:1:c-format',
    '--flag=g_printerr:1:c-format',
    '--flag=g_printf:1:c-format',
    '--flag=g_fprintf:2:c-format',
    '--flag=g_sprintf:2:c-format',
    '--flag=g_snprintf:3:c-format',
]

# nplurals for each language we ship.
NPLURALS = {'vi': 1}


class Entry:
    def __init__ (self):
        self.ctxt = None
        self.msgid = None
        self.plural = None
        self.msgstr = {}
        self.flags = set ()
        self.obsolete = False

    def key (self):
        return (self.ctxt, self.msgid)


def unquote (s):
    s = s.strip ()
    if not (s.startswith ('"') and s.endswith ('"')):
        raise ValueError ('not a quoted string: %r' % s)
    return bytes (s[1:-1], 'utf-8').decode ('unicode_escape').encode ('latin-1').decode ('utf-8')


def parse_po (path):
    entries = []
    cur = Entry ()
    field = None

    def flush ():
        nonlocal cur
        if cur.msgid is not None:
            entries.append (cur)
        cur = Entry ()

    with open (path, encoding='utf-8') as f:
        for raw in f:
            line = raw.rstrip ('\n')
            if not line.strip ():
                flush ()
                field = None
                continue
            if line.startswith ('#~'):
                cur.obsolete = True
                line = line[2:].lstrip ()
                if not line:
                    continue
            elif line.startswith ('#,'):
                cur.flags |= {x.strip () for x in line[2:].split (',')}
                continue
            elif line.startswith ('#'):
                continue
            m = re.match (r'(msgctxt|msgid_plural|msgid|msgstr(?:\[(\d+)\])?)\s+(".*")\s*$', line)
            if m:
                kw = m.group (1)
                if kw in ('msgctxt', 'msgid') and cur.msgid is not None and field is not None \
                   and field[0] == 'msgstr':
                    flush ()
                value = unquote (m.group (3))
                if kw == 'msgctxt':
                    cur.ctxt = value
                    field = ('ctxt',)
                elif kw == 'msgid':
                    cur.msgid = value
                    field = ('msgid',)
                elif kw == 'msgid_plural':
                    cur.plural = value
                    field = ('plural',)
                else:
                    n = int (m.group (2)) if m.group (2) is not None else 0
                    cur.msgstr[n] = value
                    field = ('msgstr', n)
                continue
            if line.strip ().startswith ('"') and field is not None:
                value = unquote (line)
                if field[0] == 'ctxt':
                    cur.ctxt += value
                elif field[0] == 'msgid':
                    cur.msgid += value
                elif field[0] == 'plural':
                    cur.plural += value
                else:
                    cur.msgstr[field[1]] += value
                continue
            raise ValueError ('%s: cannot parse line %r' % (path, line))
    flush ()
    return entries


def describe (e):
    s = repr (e.msgid)
    if e.ctxt is not None:
        s = '[%s] %s' % (e.ctxt, s)
    return s


def check_language (lang, template, po_path):
    problems = []
    if not os.path.isfile (po_path):
        return ['po/LINGUAS names %s but po/%s.po does not exist' % (lang, lang)]

    entries = parse_po (po_path)
    header = next ((e for e in entries if e.msgid == '' and e.ctxt is None and not e.obsolete), None)
    if header is None:
        problems.append ('%s.po: no header entry' % lang)
    else:
        h = header.msgstr.get (0, '')
        if 'fuzzy' in header.flags:
            problems.append ('%s.po: the header is fuzzy' % lang)
        if 'charset=UTF-8' not in h:
            problems.append ('%s.po: the header does not declare charset=UTF-8' % lang)
        if not re.search (r'^Language: %s$' % re.escape (lang), h, re.M):
            problems.append ('%s.po: the header does not declare Language: %s' % (lang, lang))
        if lang in NPLURALS and not re.search (
                r'^Plural-Forms: nplurals=%d; plural=' % NPLURALS[lang], h, re.M):
            problems.append ('%s.po: Plural-Forms must have nplurals=%d' % (lang, NPLURALS[lang]))

    live = {e.key (): e for e in entries if not e.obsolete and e.msgid != ''}
    for t in template:
        if t.msgid == '':
            continue
        e = live.get (t.key ())
        if e is None:
            problems.append ('%s.po: missing %s' % (lang, describe (t)))
            continue
        if 'fuzzy' in e.flags:
            problems.append ('%s.po: fuzzy %s' % (lang, describe (t)))
            continue
        if t.plural is not None:
            n = NPLURALS.get (lang)
            forms = sorted (e.msgstr)
            if e.plural != t.plural:
                problems.append ('%s.po: plural of %s differs from the template' % (lang, describe (t)))
            elif n is not None and forms != list (range (n)):
                problems.append ('%s.po: %s needs exactly %d plural forms' % (lang, describe (t), n))
            elif any (not s for s in e.msgstr.values ()):
                problems.append ('%s.po: untranslated %s' % (lang, describe (t)))
        elif not e.msgstr.get (0):
            problems.append ('%s.po: untranslated %s' % (lang, describe (t)))
    return problems


def main ():
    root = sys.argv[1] if len (sys.argv) > 1 else os.environ['GEMINI_KEYS_SOURCE_ROOT']
    xgettext = shutil.which ('xgettext')
    if xgettext is None:
        print ('xgettext not found')
        return 1

    tmp = tempfile.mkdtemp (prefix='gk-i18n-')
    try:
        pot = os.path.join (tmp, 'template.pot')
        cmd = [xgettext, '--package-name=gemini-keys', '-f', os.path.join (root, 'po', 'POTFILES.in'),
               '-D', root, '-o', pot] + XGETTEXT_ARGS
        r = subprocess.run (cmd, capture_output=True, text=True)
        if r.returncode != 0:
            print ('xgettext failed:\n' + r.stderr)
            return 1
        # A message built by pasting a macro such as G_GINT64_FORMAT into the
        # literal is cut short at the macro: the catalogue can never match
        # the string the program looks up at run time. (PRId64 and friends
        # from <inttypes.h> are understood by gettext; G_*_FORMAT are not.)
        broken = ['%s: a translatable string is cut short (use PRId64, not G_GINT64_FORMAT)'
                  % line.split (': warning:')[0]
                  for line in r.stderr.splitlines ()
                  if 'ends in the middle of a directive' in line]
        template = parse_po (pot)
    finally:
        shutil.rmtree (tmp, ignore_errors=True)

    n_messages = len ([t for t in template if t.msgid != ''])
    if n_messages == 0:
        print ('the template is empty: xgettext found no strings')
        return 1

    with open (os.path.join (root, 'po', 'LINGUAS'), encoding='utf-8') as f:
        langs = [w for line in f if not line.lstrip ().startswith ('#') for w in line.split ()]
    if not langs:
        print ('po/LINGUAS names no language')
        return 1

    problems = list (broken)
    for lang in langs:
        problems += check_language (lang, template, os.path.join (root, 'po', lang + '.po'))
    for p in problems:
        print (p)
    print ('%d messages in the template, %d problems' % (n_messages, len (problems)))
    return 1 if problems else 0


if __name__ == '__main__':
    sys.exit (main ())
