#!/usr/bin/env python3
# Installs the build into a temporary DESTDIR and checks that everything a
# desktop needs lands where the desktop looks for it, and that the installed
# files work: the translation catalogue translates, the launcher and the
# metadata carry the Vietnamese name, the schema compiles, the icons are SVG.
#
# usage: check-install.py MESON BUILDDIR PREFIX BINDIR DATADIR LOCALEDIR APP_ID GUI(true|false)
#
# SPDX-License-Identifier: GPL-3.0-or-later

import gettext
import json
import os
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET

SVG_NS = '{http://www.w3.org/2000/svg}'
VI_NAME = 'Quản lý Gemini Keys'


def main ():
    meson, builddir, prefix, bindir, datadir, localedir, app_id, gui = sys.argv[1:9]
    problems = []
    dest = tempfile.mkdtemp (prefix='gk-install-')

    def at (path):
        # Meson hands us absolute paths below the prefix; DESTDIR prepends.
        if not os.path.isabs (path):
            path = os.path.join (prefix, path)
        return os.path.join (dest, path.lstrip ('/'))

    try:
        r = subprocess.run ([meson, 'install', '-C', builddir, '--destdir', dest,
                             '--no-rebuild', '--quiet'],
                            capture_output=True, text=True)
        if r.returncode != 0:
            print ('meson install failed:\n%s%s' % (r.stdout, r.stderr))
            return 1

        # Everything the build plans to install must be there ...
        with open (os.path.join (builddir, 'meson-info', 'intro-installed.json')) as f:
            planned = json.load (f)
        for path in sorted (set (planned.values ())):
            if not os.path.lexists (at (path)):
                problems.append ('planned but not installed: %s' % path)

        # ... and the plan must hold what a desktop needs.
        expected = [
            os.path.join (datadir, 'applications', app_id + '.desktop'),
            os.path.join (datadir, 'metainfo', app_id + '.metainfo.xml'),
            os.path.join (datadir, 'glib-2.0', 'schemas', app_id + '.gschema.xml'),
            os.path.join (datadir, 'icons', 'hicolor', 'scalable', 'apps', app_id + '.svg'),
            os.path.join (datadir, 'icons', 'hicolor', 'symbolic', 'apps', app_id + '-symbolic.svg'),
            os.path.join (localedir, 'vi', 'LC_MESSAGES', 'gemini-keys.mo'),
            os.path.join (datadir, 'gemini-keys', 'pricing.json'),
        ]
        # The two programs are built by src/cli and src/ui: whichever of them
        # the build defines must be installed into bindir.
        with open (os.path.join (builddir, 'meson-info', 'intro-targets.json')) as f:
            targets = {t['name']: t for t in json.load (f) if t['type'] == 'executable'}
        programs = ['gemini-keysctl'] + (['gemini-keys'] if gui == 'true' else [])
        for exe in programs:
            t = targets.get (exe)
            if t is None:
                print ('note: the build defines no %s program (yet); not checked' % exe)
                continue
            if not t.get ('installed'):
                problems.append ('%s is built but not installed' % exe)
            expected.append (os.path.join (bindir, exe))
        for path in expected:
            if not os.path.isfile (at (path)):
                problems.append ('missing: %s' % path)
        for exe in ('gemini-keysctl', 'gemini-keys'):
            path = at (os.path.join (bindir, exe))
            if os.path.isfile (path) and not os.access (path, os.X_OK):
                problems.append ('%s is not executable' % exe)

        mo_dir = at (localedir)
        try:
            t = gettext.translation ('gemini-keys', localedir=mo_dir, languages=['vi'])
            if t.gettext ('Gemini Keys') != VI_NAME:
                problems.append ('the installed catalogue does not translate the product name')
        except OSError as e:
            problems.append ('cannot load the installed catalogue: %s' % e)

        desktop = at (os.path.join (datadir, 'applications', app_id + '.desktop'))
        if os.path.isfile (desktop):
            with open (desktop, encoding='utf-8') as f:
                text = f.read ()
            if 'Name[vi]=%s\n' % VI_NAME not in text:
                problems.append ('the installed desktop file has no Vietnamese name')
            if '\nIcon=%s\n' % app_id not in text:
                problems.append ('the installed desktop file does not name the app icon')

        metainfo = at (os.path.join (datadir, 'metainfo', app_id + '.metainfo.xml'))
        if os.path.isfile (metainfo):
            root = ET.parse (metainfo).getroot ()
            if root.findtext ('id') != app_id:
                problems.append ('the installed metainfo has the wrong id')
            names = {n.get ('{http://www.w3.org/XML/1998/namespace}lang'): n.text
                     for n in root.findall ('name')}
            if names.get ('vi') != VI_NAME:
                problems.append ('the installed metainfo has no Vietnamese name')

        schema_dir = at (os.path.join (datadir, 'glib-2.0', 'schemas'))
        if os.path.isdir (schema_dir):
            r = subprocess.run (['glib-compile-schemas', '--strict', '--dry-run', schema_dir],
                                capture_output=True, text=True)
            if r.returncode != 0:
                problems.append ('the installed schema does not compile: %s' % r.stderr.strip ())

        for sub, size in (('scalable', None), ('symbolic', 16)):
            suffix = '-symbolic.svg' if sub == 'symbolic' else '.svg'
            svg = at (os.path.join (datadir, 'icons', 'hicolor', sub, 'apps', app_id + suffix))
            if not os.path.isfile (svg):
                continue
            root = ET.parse (svg).getroot ()
            if root.tag != SVG_NS + 'svg':
                problems.append ('%s icon is not an SVG document' % sub)
            elif size is not None and root.get ('viewBox') != '0 0 %d %d' % (size, size):
                problems.append ('%s icon is not %dx%d' % (sub, size, size))

        pricing = at (os.path.join (datadir, 'gemini-keys', 'pricing.json'))
        if os.path.isfile (pricing):
            with open (pricing, encoding='utf-8') as f:
                json.load (f)
    finally:
        shutil.rmtree (dest, ignore_errors=True)

    for p in problems:
        print (p)
    return 1 if problems else 0


if __name__ == '__main__':
    sys.exit (main ())
