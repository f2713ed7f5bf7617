#!/usr/bin/python3
"""neighbour.py - the two tenants of tests/bench/50-neighbour.sh (run as their own uids).

  neighbour.py victim DIR SECS        stat, read, create and small-upload ops in DIR for SECS
                                      seconds; prints "n=N secs=S ops_s=R p50_ms=A p99_ms=B
                                      max_ms=C err=E" over every op's latency
  neighbour.py attack PATTERN DIR [FILE]
                                      one hostile pattern in DIR until SIGTERM:
      held        create uploads and keep them open, then open FILE for reading, until refused;
                  hold everything
      sparse      12 workers: create, ftruncate 4 GiB, write one byte, close, unlink, again
      concurrent  32 workers: 1 MiB uploads, again and again
      jpeg        8 workers: upload FILE (a JPEG whose header claims 9999x9999) again and again
      known       4 workers: upload FILE (content in the hash database) again and again
  The attacker prints one line "attack PATTERN: ..." on stderr when it stops; held also prints
  "held ready: ..." once it holds all it could get.  The victim counts failed ops in err=N.
"""
import errno, os, resource, signal, sys, time

def victim(d, secs):
    small = os.path.join(d, "small")
    lat, i, errs = [], 0, 0
    try:
        with open(small, "wb") as f:
            f.write(os.urandom(4096))
    except OSError as e:
        errs += 1
        print(f"victim: setup: {e}", file=sys.stderr)
    blob = os.urandom(16384)
    t0 = time.monotonic()
    end = t0 + secs
    while time.monotonic() < end:
        kind = i % 4
        s = time.monotonic()
        try:
            if kind == 0:
                os.stat(small)
            elif kind == 1:
                with open(small, "rb") as f:
                    f.read()
            elif kind == 2:
                os.close(os.open(f"{d}/c{i}", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
            else:
                fd = os.open(f"{d}/u{i}", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
                os.write(fd, blob)
                os.close(fd)
        except OSError as e:
            errs += 1
            if errs <= 5:
                print(f"victim: op {kind}: {e}", file=sys.stderr)
        lat.append(time.monotonic() - s)
        i += 1
    el = time.monotonic() - t0
    lat.sort()
    q = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] * 1000
    print(f"n={len(lat)} secs={el:.1f} ops_s={len(lat) / el:.0f} p50_ms={q(0.5):.2f} "
          f"p99_ms={q(0.99):.2f} max_ms={lat[-1] * 1000:.0f} err={errs}")

stop = False
def on_term(sig, frm):
    global stop
    stop = True

def upload(path, data):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)

def worker(pattern, d, w, data):
    k, refused = 0, 0
    while not stop:
        p = f"{d}/{pattern}-{w}-{k}"
        k += 1
        try:
            if pattern == "sparse":
                fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                try:
                    os.ftruncate(fd, 4 << 30)
                    os.write(fd, b"x")
                finally:
                    os.close(fd)
            else:
                upload(p, data)
        except OSError:
            refused += 1
        try:
            os.unlink(p)
        except OSError:
            pass
    return k, refused

def attack(pattern, d, f):
    signal.signal(signal.SIGTERM, on_term)
    signal.alarm(900)   # never outlive a benchmark run, whatever happens to its script
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if pattern == "held":
        fds, first, err = [], 0, ""
        for mode in ("create", "read"):
            while not stop:
                try:
                    if mode == "create":
                        fd = os.open(f"{d}/held{len(fds)}", os.O_WRONLY | os.O_CREAT, 0o644)
                        os.write(fd, b"x")
                    else:
                        fd = os.open(f, os.O_RDONLY)
                except OSError as e:
                    err += f" {mode}: {errno.errorcode.get(e.errno, e.errno)}"
                    break
                fds.append(fd)
            if mode == "create":
                first = len(fds)
        print(f"held ready: {first} uploads and {len(fds) - first} read opens;{err}",
              file=sys.stderr, flush=True)
        while not stop:
            time.sleep(0.1)
        print(f"attack held: {first} uploads and {len(fds) - first} read opens held;{err}",
              file=sys.stderr)
        return
    workers = {"sparse": 12, "concurrent": 32, "jpeg": 8, "known": 4}[pattern]
    data = os.urandom(1 << 20) if pattern == "concurrent" else b""
    if f:
        with open(f, "rb") as fh:
            data = fh.read()
    kids = []
    for w in range(workers):
        pid = os.fork()
        if pid == 0:
            # Die at once on SIGTERM, also inside a close() waiting for its verdict.
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.alarm(900)
            k, refused = worker(pattern, d, w, data)
            os._exit(0 if k >= 0 else 1)
        kids.append(pid)
    while not stop:
        time.sleep(0.1)
    for pid in kids:
        os.kill(pid, signal.SIGTERM)
    for pid in kids:
        os.waitpid(pid, 0)
    print(f"attack {pattern}: {workers} workers stopped", file=sys.stderr)

if __name__ == "__main__":
    if sys.argv[1] == "victim":
        victim(sys.argv[2], float(sys.argv[3]))
    else:
        attack(sys.argv[2], sys.argv[3], sys.argv[4] if len(sys.argv) > 4 else None)
