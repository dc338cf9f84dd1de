#!/usr/bin/env python3
# check-xlsx.py: opens an .xlsx (a zip of XML) and checks its first sheet:
# the header row, the frozen first row, the row count and, per column of
# the first data row, the cell's type: n (number, general), d (number with
# a date format), m (number with a currency format), s (text), b (boolean),
# - (empty or anything).
#
# usage: check-xlsx.py FILE HEADER(,-separated) ROWS TYPES(,-separated)
#
# SPDX-License-Identifier: GPL-3.0-or-later
import re
import sys
import zipfile
import xml.etree.ElementTree as ET

NS = {"m": "http://schemas.openxmlformats.org/spreadsheetml/2006/main"}
BUILTIN_DATE_FORMATS = set(range(14, 23))


def fail(message):
    print("check-xlsx: " + message, file=sys.stderr)
    sys.exit(1)


def main():
    path, header, rows, types = sys.argv[1], sys.argv[2].split(","), int(sys.argv[3]), \
        sys.argv[4].split(",")
    with zipfile.ZipFile(path) as z:
        sheet = ET.fromstring(z.read("xl/worksheets/sheet1.xml"))
        styles = ET.fromstring(z.read("xl/styles.xml"))
        shared = []
        if "xl/sharedStrings.xml" in z.namelist():
            sst = ET.fromstring(z.read("xl/sharedStrings.xml"))
            shared = ["".join(t.text or "" for t in si.iter("{%s}t" % NS["m"]))
                      for si in sst.findall("m:si", NS)]

    formats = {int(f.get("numFmtId")): f.get("formatCode")
               for f in styles.findall("m:numFmts/m:numFmt", NS)}
    xfs = [int(xf.get("numFmtId", "0")) for xf in styles.findall("m:cellXfs/m:xf", NS)]

    def kind(cell):
        t = cell.get("t", "n")
        if t in ("s", "inlineStr", "str"):
            return "s"
        if t == "b":
            return "b"
        fmt = xfs[int(cell.get("s", "0"))]
        code = formats.get(fmt, "")
        if fmt in BUILTIN_DATE_FORMATS or re.search(r"[yd]", code.replace("[$", "")):
            return "d"
        if "$" in code or fmt in (5, 6, 7, 8):
            return "m"
        return "n"

    def text(cell):
        t = cell.get("t")
        if t == "s":
            return shared[int(cell.find("m:v", NS).text)]
        if t == "inlineStr":
            return "".join(x.text or "" for x in cell.iter("{%s}t" % NS["m"]))
        v = cell.find("m:v", NS)
        return v.text if v is not None else ""

    def col(ref):
        n = 0
        for ch in re.match(r"[A-Z]+", ref).group(0):
            n = n * 26 + ord(ch) - 64
        return n - 1

    pane = sheet.find("m:sheetViews/m:sheetView/m:pane", NS)
    if pane is None or pane.get("state") != "frozen" or pane.get("ySplit") != "1":
        fail("the header row is not frozen")

    data = sheet.findall("m:sheetData/m:row", NS)
    if len(data) != rows + 1:
        fail("%d rows, expected %d and a header" % (len(data) - 1, rows))
    got = [text(c) for c in data[0].findall("m:c", NS)]
    if got != header:
        fail("header %r, expected %r" % (got, header))
    for c in data[0].findall("m:c", NS):
        if kind(c) != "s":
            fail("header cell %s is not text" % c.get("r"))
    if rows > 0:
        cells = {col(c.get("r")): c for c in data[1].findall("m:c", NS)}
        for i, want in enumerate(types):
            if want == "-":
                continue
            if i not in cells:
                fail("column %d (%s) of the first row is empty" % (i, header[i]))
            have = kind(cells[i])
            if have != want:
                fail("column %d (%s) is %s, expected %s" % (i, header[i], have, want))
    print("ok")


main()
