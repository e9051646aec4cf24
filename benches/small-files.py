"""A tree of N small distinct files, 1,000 per directory (ROOT/dNNNN/fNNN), each a few lines of web-app-like
text: every file is one blob for gumvault and for restic. Used by million-blobs.sh and restore-memory.sh.

usage: small-files.py ROOT N [LINES]     (LINES per file, default 3; 1 keeps a file within 60 bytes, which ext4
                                         with inline_data stores in its inode: see ten-million-files.sh)
"""
import os
import sys

root, n = sys.argv[1], int(sys.argv[2])
lines = int(sys.argv[3]) if len(sys.argv) > 3 else 3
for d in range(n // 1000):
    p = os.path.join(root, f"d{d:04}")
    os.makedirs(p)
    for f in range(1000):
        i = d * 1000 + f
        with open(os.path.join(p, f"f{f:03}"), "w") as fh:
            fh.write(f"row {i} user{i}@example.com {i * 2654435761 % 4294967296:08x}\n" * lines)
