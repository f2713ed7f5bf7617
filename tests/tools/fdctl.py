#!/usr/bin/env python3
"""fdctl.py - a scripted file-descriptor holder for the mount tests (tests/mount/actor-lib.sh).

Reads one command per line on stdin, runs it, answers one line on stdout: "ok [VALUE]" or
"err ERRNAME" (the errno of the failing syscall).  Descriptors and mappings are named by the
test (ID), so a test can open a file, keep the descriptor across other processes' steps and
close it when it chooses: exact syscall sequences across several processes and uids.

  open ID PATH FLAGS [MODE]   FLAGS: comma list of rdonly wronly rdwr creat excl trunc append
  pwrite ID SRC [OFF]         pwrite the whole content of local file SRC at OFF (default 0)
  write ID TEXT               write(2) TEXT (no newline) at the descriptor's offset
  pread ID OUT                read the file from offset 0 to EOF into local file OUT; VALUE = bytes
  sendfile ID OUT             the same through sendfile(2) (offset 0 to the size fstat gives)
  mmapread ID OUT             map the file read-only (MAP_SHARED, its fstat size), copy it to OUT
  readback ID                 pread the whole file and discard it (puts it in the page cache)
  ftruncate ID N | fsync ID | close ID
  mmap ID LEN                 MAP_SHARED read-write mapping of descriptor ID, named ID too
  mmwrite ID SRC              copy SRC into mapping ID at 0 and msync(MS_SYNC)
  munmap ID
  listdir PATH                VALUE = the names, sorted, joined by '/'
  stat PATH                   VALUE = "INO SIZE MODE(octal)"
  unlink PATH | rename OLD NEW
  fork IN OUT                 fork; the child reopens stdin/stdout on the fifos IN and OUT
                              and serves commands there with every descriptor and mapping
                              inherited; VALUE (to the parent) = child pid
  hold ID PATH FLAGS MAX      open PATH up to MAX times (keeping every descriptor) until an
                              open fails; VALUE = "COUNT ERRNAME" (ERRNAME "-" if none failed)
  unhold ID                   close every descriptor hold ID kept
  pid                         VALUE = own pid
  exit
Never exits on a failing syscall: the test decides what a failure means.
"""
import errno
import mmap
import os
import sys

FLAGS = {"rdonly": os.O_RDONLY, "wronly": os.O_WRONLY, "rdwr": os.O_RDWR,
         "creat": os.O_CREAT, "excl": os.O_EXCL, "trunc": os.O_TRUNC, "append": os.O_APPEND}

fds = {}
maps = {}
holds = {}


def slurp(path):
    with open(path, "rb") as f:
        return f.read()


def read_all(fd):
    out, off = [], 0
    while True:
        b = os.pread(fd, 1 << 20, off)
        if not b:
            return b"".join(out)
        out.append(b)
        off += len(b)


def run(cmd, a):
    if cmd == "open":
        fl = 0
        for f in a[2].split(","):
            fl |= FLAGS[f]
        mode = int(a[3], 8) if len(a) > 3 else 0o644
        fds[a[0]] = os.open(a[1], fl | os.O_CLOEXEC, mode)
        return ""
    if cmd == "pwrite":
        data, off = slurp(a[1]), int(a[2]) if len(a) > 2 else 0
        while data:
            n = os.pwrite(fds[a[0]], data, off)
            data, off = data[n:], off + n
        return ""
    if cmd == "write":
        os.write(fds[a[0]], " ".join(a[1:]).encode())
        return ""
    if cmd == "pread":
        data = read_all(fds[a[0]])
        with open(a[1], "wb") as f:
            f.write(data)
        return str(len(data))
    if cmd == "sendfile":
        fd = fds[a[0]]
        size, off = os.fstat(fd).st_size, 0
        with open(a[1], "wb") as f:
            while off < size:
                n = os.sendfile(f.fileno(), fd, off, size - off)
                if n == 0:
                    break
                off += n
        return str(off)
    if cmd == "mmapread":
        size = os.fstat(fds[a[0]]).st_size
        data = b""
        if size:
            m = mmap.mmap(fds[a[0]], size, mmap.MAP_SHARED, mmap.PROT_READ)
            data = m[:]
            m.close()
        with open(a[1], "wb") as f:
            f.write(data)
        return str(len(data))
    if cmd == "readback":
        return str(len(read_all(fds[a[0]])))
    if cmd == "ftruncate":
        os.ftruncate(fds[a[0]], int(a[1]))
        return ""
    if cmd == "fsync":
        os.fsync(fds[a[0]])
        return ""
    if cmd == "close":
        fd = fds.pop(a[0])
        os.close(fd)
        return ""
    if cmd == "mmap":
        maps[a[0]] = mmap.mmap(fds[a[0]], int(a[1]), mmap.MAP_SHARED,
                               mmap.PROT_READ | mmap.PROT_WRITE)
        return ""
    if cmd == "mmwrite":
        data, m = slurp(a[1]), maps[a[0]]
        m[0:len(data)] = data
        m.flush()
        return ""
    if cmd == "munmap":
        maps.pop(a[0]).close()
        return ""
    if cmd == "listdir":
        return "/".join(sorted(os.listdir(a[0])))
    if cmd == "stat":
        st = os.stat(a[0])
        return "%d %d %o" % (st.st_ino, st.st_size, st.st_mode & 0o7777)
    if cmd == "unlink":
        os.unlink(a[0])
        return ""
    if cmd == "rename":
        os.rename(a[0], a[1])
        return ""
    if cmd == "hold":
        fl, kept, err = 0, holds.setdefault(a[0], []), "-"
        for f in a[2].split(","):
            fl |= FLAGS[f]
        for _ in range(int(a[3])):
            try:
                kept.append(os.open(a[1], fl | os.O_CLOEXEC))
            except OSError as e:
                err = errno.errorcode.get(e.errno, str(e.errno))
                break
        return "%d %s" % (len(kept), err)
    if cmd == "unhold":
        for fd in holds.pop(a[0], []):
            os.close(fd)
        return ""
    if cmd == "pid":
        return str(os.getpid())
    if cmd == "fork":
        pid = os.fork()
        if pid:
            return str(pid)
        i = os.open(a[0], os.O_RDONLY)
        o = os.open(a[1], os.O_WRONLY)
        os.dup2(i, 0)
        os.dup2(o, 1)
        os.close(i)
        os.close(o)
        sys.stdin = os.fdopen(0, "r")
        sys.stdout = os.fdopen(1, "w")
        return None
    raise ValueError("unknown command " + cmd)


def main():
    while True:
        line = sys.stdin.readline()
        if not line:
            return
        words = line.split()
        if not words:
            continue
        if words[0] == "exit":
            print("ok", flush=True)
            return
        try:
            v = run(words[0], words[1:])
            if v is None:
                continue		# the forked child: it answers on its own fifo from now on
            print(("ok " + v).rstrip(), flush=True)
        except OSError as e:
            print("err " + errno.errorcode.get(e.errno, str(e.errno)), flush=True)
        except (KeyError, ValueError, IndexError) as e:
            print("err usage: %r" % (e,), flush=True)


if __name__ == "__main__":
    main()
