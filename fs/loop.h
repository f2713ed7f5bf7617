/*
 * loop.h - the request loop of hashgatefs (loop.c): a thread pool that keeps one client's
 * stream of requests on one thread.
 */
#ifndef HGFS_LOOP_H
#define HGFS_LOOP_H

struct fuse_session;

/*
 * Serve @se until it is unmounted or fuse_session_exit() is called (SIGINT/SIGTERM through
 * libfuse's handlers), with at most @max_threads threads (0: 10, libfuse's default).  Runs
 * its watchdog on the calling thread; every thread it started has ended when it returns.
 * Returns 0, or -errno when reading /dev/fuse failed or no thread could be started.
 */
int loop_run(struct fuse_session *se, unsigned max_threads);

/*
 * Called on a request thread that has replied and goes on with work of its own (hashing a
 * large write from its buffer): another thread reads the next request meanwhile, so the
 * client's next write is copied while this one is hashed.  No-op outside loop_run's pool.
 */
void loop_detach(void);

#endif
