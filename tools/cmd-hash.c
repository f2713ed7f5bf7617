/*
 * cmd-hash.c - `hashgate hash [--json] [--no-pdq] [--dihedral] FILE...`: the MD5, SHA-1,
 * SHA-256 and size of each file and, for JPEG, PNG, WebP, GIF and BMP images, the PDQ hash and quality, as the
 * daemon computes them (same library calls, same size and pixel limits from the config).
 *
 * Each file is read once, with read(2), so `-` (stdin) and pipes work like regular files.  The
 * bytes are kept in memory only while they look like an image no larger than pdq_max_size; a
 * larger regular file is decoded again from its fd, streaming.  An unreadable file, or one
 * that looks like an image but gives no PDQ (pdq_error), gets an error naming it and the run
 * goes on; exit status 1 then (tools/cli.h).  Such an image still gets its exact hashes.
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hashdb/hash.h"
#include "hashdb/image.h"
#include "hashdb/pdq.h"
#include "tools/adm.h"
#include "tools/cli.h"
#include "tools/commands.h"

#define CMD		"hash"
#define READ_CHUNK	(1u << 20)

static void usage(FILE *f)
{
	fprintf(f,
		"usage: hashgate hash [--json] [--no-pdq] [--dihedral] FILE...\n"
		"\n"
		"Print size, MD5, SHA-1 and SHA-256 of each FILE ('-' is standard input) and, for\n"
		"JPEG, PNG, WebP, GIF and BMP images, the PDQ perceptual hash (64 hex digits) and its quality\n"
		"(0-100; below 50 the hash is unreliable), computed as hashgatefs does.\n"
		"\n"
		"  --json       one JSON array, one object per file: file, size, md5, sha1, sha256,\n"
		"               pdq, quality, width, height (pdq fields null when not an image),\n"
		"               error (only when the file could not be read), pdq_error (a file\n"
		"               that looks like an image but gave no PDQ, with the reason) and\n"
		"               pdq_warning (the decoder recovered from damaged data)\n"
		"  --no-pdq     skip PDQ (exact hashes only)\n"
		"  --dihedral   also print the 7 rotated/flipped PDQ variants\n"
		"\n"
		"Images over pdq_max_size bytes are decoded from the file (not from a pipe); images\n"
		"over the decode work bound (image_max_pixels, hashgate.conf) give a pdq_error.\n"
		"Exit status: 0 all files hashed, 1 some file could not be read or gave a\n"
		"pdq_error, 64 usage error.\n");
}

struct file_hash {
	struct digests d;
	int pdq_rc;			/* 0 ok, -ENOENT not an image / not asked, else the error */
	struct pdq_result pdq;
};

/*
 * Hash everything readable from fd.  Returns 0 or -errno (read failure); fh->pdq_rc says
 * what became of PDQ.
 */
static int hash_stream(int fd, const struct cli *cli, unsigned pdq_flags, int want_pdq,
		       struct file_hash *fh)
{
	uint8_t *buf = NULL, *keep = NULL;
	size_t klen = 0, kcap = 0;
	uint64_t max = cli->cfg.pdq_max_size;
	int jpeg = -1, r;		/* -1 undecided, 0 no, 1 yes */
	struct hasher h;

	memset(fh, 0, sizeof(*fh));
	fh->pdq_rc = -ENOENT;
	buf = malloc(READ_CHUNK);
	if (!buf)
		return -ENOMEM;
	r = hasher_init(&h, HASH_EXACT_MASK);
	if (r < 0)
		goto out_buf;
	if (!want_pdq)
		jpeg = 0;
	for (;;) {
		ssize_t n = read(fd, buf, READ_CHUNK);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			goto out_hasher;
		}
		if (n == 0)
			break;
		r = hasher_update(&h, buf, (size_t)n);
		if (r < 0)
			goto out_hasher;
		if (jpeg == 0)
			continue;
		if (max && klen + (size_t)n > max) {
			fh->pdq_rc = -EFBIG;	/* keep hashing, stop keeping */
			jpeg = 0;
			free(keep);
			keep = NULL;
			continue;
		}
		if (klen + (size_t)n > kcap) {
			size_t ncap = kcap ? kcap : READ_CHUNK;
			uint8_t *nk;

			while (ncap < klen + (size_t)n)
				ncap *= 2;
			nk = realloc(keep, ncap);
			if (!nk) {
				fh->pdq_rc = -ENOMEM;
				jpeg = 0;
				free(keep);
				keep = NULL;
				continue;
			}
			keep = nk;
			kcap = ncap;
		}
		memcpy(keep + klen, buf, (size_t)n);
		klen += (size_t)n;
		if (jpeg < 0 && klen >= IMAGE_MAGIC_LEN) {
			jpeg = image_kind(keep, klen) != 0;
			if (!jpeg) {
				free(keep);
				keep = NULL;
			}
		}
	}
	r = hasher_final(&h, &fh->d);
	if (jpeg < 0 && keep)		/* shorter than IMAGE_MAGIC_LEN */
		jpeg = image_kind(keep, klen) != 0;
	if (r == 0 && jpeg == 1)
		fh->pdq_rc = image_pdq_buf(keep, klen, pdq_flags, cli->cfg.image_max_pixels,
					    &fh->pdq);
	/* Too big to keep: a regular file can be decoded again, streaming from the file. */
	if (r == 0 && fh->pdq_rc == -EFBIG) {
		struct stat st;

		if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode))
			fh->pdq_rc = image_pdq_fd(fd, max, pdq_flags, cli->cfg.image_max_pixels,
						  &fh->pdq);
	}
out_hasher:
	hasher_release(&h);
	free(keep);
out_buf:
	free(buf);
	return r;
}

static const char *pdq_error(const struct file_hash *fh)
{
	if (fh->pdq_rc == -EFBIG)
		return "image over pdq_max_size on a pipe (not kept in memory)";
	if (fh->pdq.reason[0])
		return fh->pdq.reason;
	return image_strerror(fh->pdq_rc);
}

static void print_text(const char *name, const struct file_hash *fh, int dihedral)
{
	char hex[2 * HASH_MAX_LEN + 1];
	int a, d;

	printf("%s:\n  size    %llu\n", name, (unsigned long long)fh->d.size);
	for (a = HASH_MD5; a <= HASH_SHA256; a++) {
		hex_encode(digests_get(&fh->d, a), hash_algo_len(a), hex);
		printf("  %-7s %s\n", hash_algo_name(a), hex);
	}
	if (fh->pdq_rc == -ENOENT)
		return;
	if (fh->pdq_rc < 0) {
		printf("  pdq     - (%s)\n", pdq_error(fh));
		return;
	}
	pdq_to_hex(&fh->pdq.hash[PDQ_ORIG], hex);
	printf("  pdq     %s  quality %d  %dx%d%s%s\n", hex, fh->pdq.quality, fh->pdq.width,
	       fh->pdq.height, fh->pdq.quality < 50 ? "  (low quality: unreliable)" : "",
	       fh->pdq.warning ? "  (corrupt or truncated data: hash of what decoded)" : "");
	for (d = 1; dihedral && d < fh->pdq.ndih; d++) {
		pdq_to_hex(&fh->pdq.hash[d], hex);
		printf("  %-7s %s\n", pdq_dihedral_name(d), hex);
	}
}

static void print_json(const char *name, const struct file_hash *fh, int err, int dihedral,
		       int first)
{
	char hex[2 * HASH_MAX_LEN + 1];
	int a, d;

	printf("%s{\"file\":", first ? "" : ",\n");
	adm_json_print(stdout, name);
	if (err) {
		printf(",\"error\":");
		adm_json_print(stdout, strerror(-err));
		putchar('}');
		return;
	}
	printf(",\"size\":%llu", (unsigned long long)fh->d.size);
	for (a = HASH_MD5; a <= HASH_SHA256; a++) {
		hex_encode(digests_get(&fh->d, a), hash_algo_len(a), hex);
		printf(",\"%s\":\"%s\"", hash_algo_name(a), hex);
	}
	if (fh->pdq_rc < 0) {
		printf(",\"pdq\":null,\"quality\":null");
		if (fh->pdq_rc != -ENOENT) {
			printf(",\"pdq_error\":");
			adm_json_print(stdout, pdq_error(fh));
		}
		putchar('}');
		return;
	}
	pdq_to_hex(&fh->pdq.hash[PDQ_ORIG], hex);
	printf(",\"pdq\":\"%s\",\"quality\":%d,\"width\":%d,\"height\":%d", hex,
	       fh->pdq.quality, fh->pdq.width, fh->pdq.height);
	if (fh->pdq.warning)
		printf(",\"pdq_warning\":\"corrupt or truncated data: hash of what decoded\"");
	if (dihedral && fh->pdq.ndih == PDQ_NDIH) {
		printf(",\"pdq_dihedral\":{");
		for (d = 1; d < PDQ_NDIH; d++) {
			pdq_to_hex(&fh->pdq.hash[d], hex);
			printf("%s\"%s\":\"%s\"", d > 1 ? "," : "", pdq_dihedral_name(d), hex);
		}
		putchar('}');
	}
	putchar('}');
}

int cmd_hash(int argc, char **argv, struct cli *cli)
{
	int i, r, nfiles = 0, failed = 0, want_pdq = 1, dihedral = 0, first = 1, stdin_used = 0;
	char **files;

	files = calloc(argc > 0 ? (size_t)argc : 1, sizeof(*files));
	if (!files) {
		cli_error(CMD, "out of memory");
		return EXIT_ERROR;
	}
	for (i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			usage(stdout);
			free(files);
			return 0;
		}
		if (!strcmp(a, "--")) {
			for (i++; i < argc; i++)
				files[nfiles++] = argv[i];
			break;
		}
		r = cli_common_option(cli, CMD, argc, argv, &i);
		if (r < 0)
			goto usage_err;
		if (r > 0)
			continue;
		if (!strcmp(a, "--no-pdq")) {
			want_pdq = 0;
		} else if (!strcmp(a, "--dihedral")) {
			dihedral = 1;
		} else if (a[0] == '-' && a[1]) {
			cli_error(CMD, "unknown option '%s'", a);
			goto usage_err;
		} else {
			files[nfiles++] = argv[i];
		}
	}
	if (!nfiles) {
		cli_error(CMD, "no FILE given");
		goto usage_err;
	}
	if (cli->json)
		putchar('[');
	for (i = 0; i < nfiles; i++) {
		const char *name = files[i];
		struct file_hash fh;
		int fd, is_stdin = !strcmp(name, "-");

		memset(&fh, 0, sizeof(fh));
		fh.pdq_rc = -ENOENT;

		if (is_stdin && stdin_used++) {
			r = -EBADF;	/* stdin is consumed by its first '-' */
		} else {
			fd = is_stdin ? STDIN_FILENO : open(name, O_RDONLY | O_CLOEXEC);
			if (fd < 0) {
				r = -errno;
			} else {
				r = hash_stream(fd, cli, dihedral ? PDQ_DIHEDRAL : 0, want_pdq, &fh);
				if (!is_stdin)
					close(fd);
			}
		}
		if (r < 0) {
			failed++;
			cli_error(CMD, "%s: %s", is_stdin ? "(stdin)" : name,
				  r == -EBADF && is_stdin ? "standard input given twice" :
				  strerror(-r));
		} else if (fh.pdq_rc < 0 && fh.pdq_rc != -ENOENT) {
			failed++;
			cli_error(CMD, "%s: no PDQ: %s", name, pdq_error(&fh));
		}
		if (cli->json)
			print_json(name, &fh, r, dihedral, first);
		else if (r == 0)
			print_text(name, &fh, dihedral);
		first = 0;
		fflush(stdout);
	}
	if (cli->json)
		printf("]\n");
	free(files);
	return failed ? EXIT_FOUND : 0;

usage_err:
	usage(stderr);
	free(files);
	return EXIT_USAGE;
}
