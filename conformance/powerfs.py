"""A file system that forgets, on a power cut, whatever was not synced.

Usage: powerfs.py MOUNTPOINT STATE_DIR   (runs as root, in the foreground)

Everything lives in memory, in two copies: what processes see now, and what
a disk would still hold after the power went. Only a sync moves data from
the first to the second, as POSIX promises and no more:
  - fsync or fdatasync of a file keeps its bytes (and size);
  - fsync of a directory keeps its names (which file or directory each one
    names, not their contents);
so a file created and written but never synced, or synced but never named in
a synced directory, is gone after a cut, and a rename or unlink not followed
by a sync of its directory is undone.

Every unmount is a power cut: the test stops the processes using the mount,
unmounts it, and this program drops what was not synced and mounts the rest
again. Each mount writes its count to STATE_DIR/mounted; the file
STATE_DIR/stop makes the next unmount the last. STATE_DIR/stats holds, after
each mount, what the last cut dropped.
"""

import errno
import os
import stat
import sys
import threading
import time

import fusepy as fuse


class Node:
    """An inode: a file's bytes or a directory's names."""

    __slots__ = ("ino", "mode", "data", "names", "nlink", "mtime")

    def __init__(self, ino, mode):
        self.ino = ino
        self.mode = mode
        self.data = bytearray() if stat.S_ISREG(mode) else None
        self.names = {} if stat.S_ISDIR(mode) else None
        self.nlink = 2 if stat.S_ISDIR(mode) else 1
        self.mtime = time.time()


class Durable:
    """What a sync kept of an inode."""

    __slots__ = ("mode", "data", "names")

    def __init__(self, mode, data=b"", names=None):
        self.mode = mode
        self.data = data
        self.names = dict(names or {})


class PowerFs:
    def __init__(self):
        self.mutex = threading.Lock()
        self.nodes = {}
        self.durable = {1: Durable(stat.S_IFDIR | 0o755)}
        self.next_ino = 2
        self.handles = {}
        self.next_fh = 1
        self.dropped = {}
        self.restore()

    # --- power --------------------------------------------------------------
    def restore(self):
        """Forgets what is not durable: the visible tree becomes the kept one."""
        before = {ino: n for ino, n in self.nodes.items()}
        self.nodes, self.handles = {}, {}
        seen = {}

        def build(ino):
            kept = self.durable[ino]
            node = Node(ino, kept.mode)
            self.nodes[ino] = node
            if node.data is not None:
                node.data = bytearray(kept.data)
            if node.names is not None:
                for name, child in kept.names.items():
                    if child not in seen:
                        seen[child] = True
                        build(child)
                    else:
                        self.nodes[child].nlink += 1
                    node.names[name] = child
                    if self.nodes[child].names is not None:
                        node.nlink += 1

        seen[1] = True
        build(1)
        lost_bytes = sum(
            max(0, len(n.data) - len(self.nodes[i].data)) if i in self.nodes else len(n.data)
            for i, n in before.items()
            if n.data is not None
        )
        self.dropped = {
            "inodes": sum(1 for i in before if i not in self.nodes),
            "bytes": lost_bytes,
        }

    def keep_file(self, node):
        kept = self.durable.get(node.ino)
        if kept is None:
            self.durable[node.ino] = Durable(node.mode, bytes(node.data))
        else:
            kept.mode, kept.data = node.mode, bytes(node.data)

    def keep_dir(self, node):
        for child in node.names.values():
            if child not in self.durable:
                # Named on disk, but its own contents were never synced.
                self.durable[child] = Durable(self.nodes[child].mode)
        kept = self.durable.get(node.ino)
        if kept is None:
            self.durable[node.ino] = Durable(node.mode, names=node.names)
        else:
            kept.names = dict(node.names)

    # --- paths --------------------------------------------------------------
    def lookup(self, path):
        node = self.nodes[1]
        for part in [p for p in path.split("/") if p]:
            if node.names is None:
                raise fuse.FuseOSError(errno.ENOTDIR)
            child = node.names.get(part)
            if child is None:
                raise fuse.FuseOSError(errno.ENOENT)
            node = self.nodes[child]
        return node

    def parent(self, path):
        head, name = os.path.split(path.rstrip("/"))
        dir_node = self.lookup(head or "/")
        if dir_node.names is None:
            raise fuse.FuseOSError(errno.ENOTDIR)
        return dir_node, name

    def node_of(self, path, fh):
        if fh is not None and fh in self.handles:
            return self.nodes[self.handles[fh]]
        return self.lookup(path)

    def handle(self, node):
        fh = self.next_fh
        self.next_fh += 1
        self.handles[fh] = node.ino
        return fh

    def new_node(self, mode):
        node = Node(self.next_ino, mode)
        self.next_ino += 1
        self.nodes[node.ino] = node
        return node

    def unlink_name(self, dir_node, name):
        ino = dir_node.names.pop(name)
        node = self.nodes[ino]
        node.nlink -= 1
        dir_node.mtime = time.time()
        if node.names is not None:
            dir_node.nlink -= 1

    # --- FUSE ---------------------------------------------------------------
    def __call__(self, op, *args):
        with self.mutex:
            return getattr(self, "op_" + op)(*args)

    def __getattr__(self, name):
        # fusepy registers exactly the operations this object has.
        if "op_" + name in type(self).__dict__:
            return getattr(self, "op_" + name)
        raise AttributeError(name)

    def op_init(self, path):
        state = sys.argv[2]
        mounts = int(_read(os.path.join(state, "mounted")) or 0) + 1
        _write(os.path.join(state, "stats"), f"{self.dropped['inodes']} {self.dropped['bytes']}\n")
        _write(os.path.join(state, "mounted"), f"{mounts}\n")

    def op_getattr(self, path, fh=None):
        node = self.node_of(path, fh)
        size = len(node.data) if node.data is not None else 4096
        return {
            "st_ino": node.ino,
            "st_mode": node.mode,
            "st_nlink": node.nlink,
            "st_size": size,
            "st_blocks": (size + 511) // 512,
            "st_mtime": node.mtime,
            "st_ctime": node.mtime,
            "st_atime": node.mtime,
            "st_uid": 0,
            "st_gid": 0,
        }

    def op_readdir(self, path, fh):
        return [".", ".."] + list(self.lookup(path).names)

    def op_opendir(self, path):
        node = self.lookup(path)
        if node.names is None:
            raise fuse.FuseOSError(errno.ENOTDIR)
        return self.handle(node)

    def op_releasedir(self, path, fh):
        self.handles.pop(fh, None)

    def op_fsyncdir(self, path, datasync, fh):
        self.keep_dir(self.node_of(path, fh))
        return 0

    def op_mkdir(self, path, mode):
        dir_node, name = self.parent(path)
        if name in dir_node.names:
            raise fuse.FuseOSError(errno.EEXIST)
        node = self.new_node(stat.S_IFDIR | (mode & 0o7777))
        dir_node.names[name] = node.ino
        dir_node.nlink += 1
        return 0

    def op_rmdir(self, path):
        dir_node, name = self.parent(path)
        node = self.lookup(path)
        if node.names is None:
            raise fuse.FuseOSError(errno.ENOTDIR)
        if node.names:
            raise fuse.FuseOSError(errno.ENOTEMPTY)
        self.unlink_name(dir_node, name)
        return 0

    def op_create(self, path, mode, fi=None):
        dir_node, name = self.parent(path)
        if name in dir_node.names:
            node = self.nodes[dir_node.names[name]]
        else:
            node = self.new_node(stat.S_IFREG | (mode & 0o7777))
            dir_node.names[name] = node.ino
        return self.handle(node)

    def op_open(self, path, flags):
        node = self.lookup(path)
        if flags & os.O_TRUNC:
            node.data = bytearray()
        return self.handle(node)

    def op_release(self, path, fh):
        self.handles.pop(fh, None)
        return 0

    def op_flush(self, path, fh):
        return 0

    def op_read(self, path, size, offset, fh):
        return bytes(self.node_of(path, fh).data[offset : offset + size])

    def op_write(self, path, data, offset, fh):
        node = self.node_of(path, fh)
        if offset > len(node.data):
            node.data.extend(b"\0" * (offset - len(node.data)))
        node.data[offset : offset + len(data)] = data
        node.mtime = time.time()
        return len(data)

    def op_truncate(self, path, length, fh=None):
        node = self.node_of(path, fh)
        if length < len(node.data):
            del node.data[length:]
        else:
            node.data.extend(b"\0" * (length - len(node.data)))
        node.mtime = time.time()
        return 0

    def op_fsync(self, path, datasync, fh):
        self.keep_file(self.node_of(path, fh))
        return 0

    def op_unlink(self, path):
        dir_node, name = self.parent(path)
        if name not in dir_node.names:
            raise fuse.FuseOSError(errno.ENOENT)
        if self.nodes[dir_node.names[name]].names is not None:
            raise fuse.FuseOSError(errno.EISDIR)
        self.unlink_name(dir_node, name)
        return 0

    def op_rename(self, old, new):
        src_dir, src_name = self.parent(old)
        if src_name not in src_dir.names:
            raise fuse.FuseOSError(errno.ENOENT)
        dst_dir, dst_name = self.parent(new)
        moving = self.nodes[src_dir.names[src_name]]
        if dst_name in dst_dir.names:
            there = self.nodes[dst_dir.names[dst_name]]
            if there.ino == moving.ino:
                return 0
            if there.names:
                raise fuse.FuseOSError(errno.ENOTEMPTY)
            self.unlink_name(dst_dir, dst_name)
        del src_dir.names[src_name]
        dst_dir.names[dst_name] = moving.ino
        if moving.names is not None:
            src_dir.nlink -= 1
            dst_dir.nlink += 1
        return 0

    def op_chmod(self, path, mode):
        node = self.lookup(path)
        node.mode = (node.mode & ~0o7777) | (mode & 0o7777)
        return 0

    def op_chown(self, path, uid, gid):
        return 0

    def op_utimens(self, path, times=None):
        self.lookup(path).mtime = times[1] if times else time.time()
        return 0

    def op_statfs(self, path):
        return {"f_bsize": 4096, "f_frsize": 4096, "f_blocks": 1 << 22, "f_bfree": 1 << 21,
                "f_bavail": 1 << 21, "f_files": 1 << 20, "f_ffree": 1 << 19, "f_namemax": 255}


def _read(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except FileNotFoundError:
        return ""


def _write(path, text):
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)


def main():
    mountpoint, state = sys.argv[1], sys.argv[2]
    fs = PowerFs()
    while True:
        fuse.FUSE(fs, mountpoint, foreground=True, nothreads=False, use_ino=True,
                  big_writes=True, max_write=131072, hard_remove=True, fsname="powerfs")
        if os.path.exists(os.path.join(state, "stop")):
            return
        with fs.mutex:
            fs.restore()


if __name__ == "__main__":
    main()
