#!/usr/bin/env python3
# Lays out, in the build tree, the part of an installed share/ folder that
# the desktop looks things up in, so that `meson devenv` can put it on
# XDG_DATA_DIRS: applications/<app id>.desktop (the merged desktop file) and
# icons/hicolor (the source tree's icons).
#
#   devenv-share.py OUTPUT_DIR DESKTOP_FILE ICONS_DIR
import os
import shutil
import sys

out, desktop, icons = sys.argv[1:4]

applications = os.path.join(out, 'applications')
os.makedirs(applications, exist_ok=True)
shutil.copyfile(desktop, os.path.join(applications, os.path.basename(desktop)))

link = os.path.join(out, 'icons')
if os.path.islink(link) or os.path.exists(link):
    os.remove(link)
os.symlink(os.path.abspath(icons), link)

# The folder is the build's output: its time stamp says it is up to date.
os.utime(out)
