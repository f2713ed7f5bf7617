/*
 * hglog.h - logging for the daemon and the CLI: syslog (journald) or stderr, one line per
 * event, and safe escaping of untrusted strings (file names) into key=value log fields.
 *
 * hglog_init() is called once before threads start; hglog() is thread-safe afterwards (one
 * write(2) or syslog(3) call per line, so lines never interleave).
 */
#ifndef HASHDB_HGLOG_H
#define HASHDB_HGLOG_H

#include <stddef.h>
#include <syslog.h>

/* to_stderr: 1 = stderr (foreground, CLI), 0 = syslog.  level: LOG_ERR .. LOG_DEBUG. */
void hglog_init(const char *ident, int to_stderr, int level);
void hglog_set_level(int level);

__attribute__((format(printf, 2, 3)))
void hglog(int prio, const char *fmt, ...);

/*
 * Escape src for a log or JSON string: quotes, backslash, control characters and bytes that are
 * not valid UTF-8 become \" \\ \n \t \xNN (or \u00NN with json=1), so a file name can never
 * forge a line or a field.  Always NUL-terminates; returns the length the full escape needs
 * (like snprintf), so a result >= dstlen means truncated.
 */
size_t hglog_escape(char *dst, size_t dstlen, const char *src, int json);
/*
 * For messages to a terminal: the len bytes of src with C0 and C1 control characters, DEL
 * and invalid UTF-8 as \xNN, everything else (quotes, backslashes) as is.  Returns the length
 * the result needed (it is cut to dstlen - 1 bytes).
 */
size_t hglog_escape_text(char *dst, size_t dstlen, const char *src, size_t len);

#endif
