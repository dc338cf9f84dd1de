#!/usr/bin/env python3
# dump-xlsx.py: prints every part of an .xlsx (a zip of XML) but its
# document properties (they hold the time the file was written) and its
# theme (libxlsxwriter's fixed one), each after a line naming it, in the
# order the zip holds them: two workbooks with the same dump have the same
# sheets, cells, formats and names.
#
# usage: dump-xlsx.py FILE
#
# SPDX-License-Identifier: GPL-3.0-or-later
import sys
import zipfile


def main():
    out = sys.stdout.buffer
    with zipfile.ZipFile(sys.argv[1]) as z:
        for name in z.namelist():
            if name.startswith(("docProps/", "xl/theme/")):
                continue
            out.write(b"== " + name.encode() + b"\n")
            out.write(z.read(name))
            out.write(b"\n")


if __name__ == "__main__":
    main()
