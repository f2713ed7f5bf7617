/*
 * test-tmpname.c - the name a client meant for a file it wrote under a temporary name
 * (hashdb/tmpname.h), which quarantine records, the audit log and evidence bundles show.
 *
 * What users rely on: the common temporary-name patterns of upload tools give the final name
 * in the same directory; names that carry no final name (".upload-8765.tmp", "upload.tmp",
 * PHP's "phpAbC123") give none rather than a wrong one.
 */
#include <string.h>

#include "hashdb/tmpname.h"
#include "tests/unit/tap.h"

static void want(const char *path, const char *intended, const char *pattern)
{
	char out[256];
	const char *pat = NULL;
	int r = tmpname_intended(path, out, sizeof(out), &pat);

	if (!intended) {
		ok(r == 0, "%s: no intended name (got %s)", path, r ? out : "none");
		return;
	}
	ok(r == 1 && strcmp(out, intended) == 0 && pat && strcmp(pat, pattern) == 0,
	   "%s -> %s (%s); got %s (%s)", path, intended, pattern, r ? out : "none",
	   pat ? pat : "-");
}

int main(void)
{
	want("dir/.known3.bin.l5qPp5", "dir/known3.bin", "rsync");
	want(".k.bin.AbC123", "k.bin", "rsync");
	want("a/b/.noext.x1y2z3", "a/b/noext", "rsync");
	want(".k.bin.AbC12", NULL, NULL);		/* 5 characters: not rsync's */
	want(".k.bin.AbC12!", NULL, NULL);
	want("photo.jpg.tmp", "photo.jpg", "tmp");
	want("up/report.final.pdf.part", "up/report.final.pdf", "part");
	want("up/movie.mp4.filepart", "up/movie.mp4", "winscp");
	want("up/README.filepart", "up/README", "winscp");
	want("up/cat.png.ocTransferId1234567.part", "up/cat.png", "nextcloud");
	want("ftp/.in.photo.jpg.", "ftp/photo.jpg", "proftpd");
	want(".upload-8765.tmp", NULL, NULL);		/* no final name in it */
	want("upload.tmp", NULL, NULL);
	want("phpAbC123", NULL, NULL);
	want(".hidden.tmp", NULL, NULL);
	want("plain.jpg", NULL, NULL);
	want(".tmp", NULL, NULL);
	want("x/.in..", NULL, NULL);
	{
		char small[4];

		ok(tmpname_intended("d/.long-name.abcdef", small, sizeof(small), NULL) == 0,
		   "a name that does not fit the buffer: none, not a truncated one");
	}
	return done_testing();
}
