/*
 * fsx.c - differential random-operations tester: runs one pseudo-random sequence of file system
 * operations in two directories (typically a hashgatefs mount and a plain reference directory)
 * and reports the first step where their outcomes or resulting state differ.
 *
 * Usage: fsx [options] DIR_A DIR_B     (both must exist and be empty)
 *
 * Invariants:
 *  - The operation sequence is a pure function of the seed (and of outcomes, which are the same on
 *    both sides until a divergence is reported), so `fsx -s SEED -n N` replays a failure exactly.
 *  - Every operation is executed on A and then on B with identical arguments and data; return
 *    values, errno, data read and (after every step) the metadata of the touched objects are
 *    compared.  A full tree walk (names, type, mode, nlink, size, contents, symlink targets)
 *    runs every -c steps and at the end.
 *  - The tree stays bounded: paths are drawn from a small name pool at depth <= 2, files are
 *    at most -S bytes, at most FSX_SLOTS descriptors are open per side.
 *  - Nothing outside DIR_A and DIR_B is touched: symlink targets are relative and never contain
 *    "..", so no rename can make one point outside the tree.
 *
 * Exit status: 0 no divergence, 1 divergence (details on stderr), 2 usage or setup error.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#define FSX_SLOTS	6
#define FSX_HIST	48
#define FSX_DESC	256
#define FSX_PATH	128

enum op_kind {
	OP_OPEN, OP_CLOSE, OP_WRITE, OP_PWRITE, OP_READ, OP_PREAD, OP_LSEEK, OP_FTRUNCATE,
	OP_TRUNCATE, OP_FSYNC, OP_FDATASYNC, OP_MMAPWRITE, OP_MMAPREAD, OP_RENAME, OP_LINK,
	OP_UNLINK, OP_MKDIR, OP_RMDIR, OP_CHMOD, OP_FCHMOD, OP_STAT, OP_SYMLINK, OP_READLINK,
	OP_FALLOCATE, OP_COPYRANGE, OP_READDIR,
	OP_NKINDS
};

static const char *const op_names[OP_NKINDS] = {
	"open", "close", "write", "pwrite", "read", "pread", "lseek", "ftruncate",
	"truncate", "fsync", "fdatasync", "mmapwrite", "mmapread", "rename", "link",
	"unlink", "mkdir", "rmdir", "chmod", "fchmod", "stat", "symlink", "readlink",
	"fallocate", "copyrange", "readdir",
};

/* Relative frequency of each operation; -X NAME sets one to 0. */
static unsigned op_weight[OP_NKINDS] = {
	[OP_OPEN] = 14, [OP_CLOSE] = 9, [OP_WRITE] = 12, [OP_PWRITE] = 10, [OP_READ] = 5,
	[OP_PREAD] = 5, [OP_LSEEK] = 3, [OP_FTRUNCATE] = 4, [OP_TRUNCATE] = 3, [OP_FSYNC] = 2,
	[OP_FDATASYNC] = 1, [OP_MMAPWRITE] = 3, [OP_MMAPREAD] = 2, [OP_RENAME] = 6,
	[OP_LINK] = 3, [OP_UNLINK] = 5, [OP_MKDIR] = 3, [OP_RMDIR] = 2, [OP_CHMOD] = 3,
	[OP_FCHMOD] = 2, [OP_STAT] = 3, [OP_SYMLINK] = 2, [OP_READLINK] = 1, [OP_FALLOCATE] = 2,
	[OP_COPYRANGE] = 2, [OP_READDIR] = 2,
};

struct op {
	enum op_kind kind;
	int slot, slot2;
	char path[FSX_PATH], path2[FSX_PATH];
	int flags;
	mode_t mode;
	off_t off, off2;
	size_t len;
	int whence;
	unsigned char *data;		/* len bytes, for writes */
};

struct side {
	const char *label;
	const char *root;
	int rootfd;
	int fd[FSX_SLOTS];
};

/* What one side's execution of an op produced; compared field by field. */
struct result {
	long long ret;
	int err;
	unsigned char *buf;		/* data read, ret bytes */
	char str[4096];			/* readlink target, readdir listing */
	int nstat;			/* stats of touched objects, taken after the op */
	struct {
		int err;
		struct stat st;
	} st[4];
	char stname[4][FSX_PATH + 16];
};

struct slotinfo {
	int open;
	int flags;
	char path[FSX_PATH];
};

static uint64_t opt_seed;
static unsigned long long opt_nops = 10000;
static unsigned long long opt_check = 1000;
static size_t opt_maxsize = 256 * 1024;
static int opt_verbose;
static int opt_quiesce;		/* close every descriptor before a full check */
static int opt_single;		/* never open a file that is already open in another slot */
static int opt_publish;		/* -P: close every descriptor before any path operation */
static int opt_holes;		/* also compare SEEK_DATA/SEEK_HOLE (same fs type on both sides) */
static unsigned long long opt_verbose_from = ~0ULL;
static unsigned long long opt_inject = ~0ULL;
static int opt_nonlink;		/* -L: leave link counts out (to look past a known nlink bug) */
static int opt_compare_only;	/* -C: no operations, just compare the two trees */
static const char *opt_ignore[8];	/* -i NAME: top-level names left out of the comparison */
static int nignore;

static struct side sides[2];
static struct slotinfo slots[FSX_SLOTS];
static unsigned long long step;
static char history[FSX_HIST][FSX_DESC];
static unsigned long long nok[OP_NKINDS], nfail[OP_NKINDS];
static unsigned long long nhist;

static const char *const dnames[] = { "d0", "d1", "d2" };
static const char *const fnames[] = { "f0", "f1", "f2", "f3", "f4", "f5", "f6", "f7", "f8", "f9" };
static const char *const lnames[] = { "l0", "l1" };
#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* splitmix64: tiny, good enough, and identical everywhere. */
static uint64_t rng_state;
static uint64_t rnd(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static uint64_t rndn(uint64_t n)
{
	return n ? rnd() % n : 0;
}

static const char *errname(int e)
{
	const char *s;

	if (!e)
		return "0";
	s = strerrorname_np(e);
	return s ? s : "E?";
}

static void record(const char *fmt, ...)
{
	va_list ap;
	char *h = history[nhist % FSX_HIST];

	va_start(ap, fmt);
	vsnprintf(h, FSX_DESC, fmt, ap);
	va_end(ap);
	nhist++;
	if (opt_verbose || step >= opt_verbose_from)
		fprintf(stderr, "%s\n", h);
}

static void dump_history(void)
{
	unsigned long long i = nhist > FSX_HIST ? nhist - FSX_HIST : 0;

	fprintf(stderr, "fsx: last operations (oldest first):\n");
	for (; i < nhist; i++)
		fprintf(stderr, "  %s\n", history[i % FSX_HIST]);
}

__attribute__((format(printf, 1, 2), noreturn))
static void diverge(const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	dump_history();
	fprintf(stderr, "fsx: DIVERGENCE at step %llu (seed %" PRIu64 "): ", step, opt_seed);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nfsx: A=%s B=%s\n", sides[0].root, sides[1].root);
	if (opt_compare_only)
		exit(1);
	fprintf(stderr, "fsx: replay: fsx -s %" PRIu64 " -n %llu%s%s%s%s -c %llu -S %zu -b %llu A B\n",
		opt_seed, step + 1, opt_publish ? " -P" : opt_quiesce ? " -q" : "",
		opt_single ? " -1" : "", opt_nonlink ? " -L" : "", opt_holes ? " -H" : "", opt_check, opt_maxsize,
		step > 20 ? step - 20 : 0);
	exit(1);
}

__attribute__((format(printf, 1, 2), noreturn))
static void die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "fsx: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	exit(2);
}

/* A random path of a given flavour: mostly well-typed names, sometimes the other kind. */
static void gen_path(char *out, int want_dir)
{
	int depth, i;
	size_t n = 0;
	uint64_t r = rndn(100);

	depth = r < 50 ? 0 : r < 85 ? 1 : 2;
	out[0] = '\0';
	for (i = 0; i < depth; i++)
		n += snprintf(out + n, FSX_PATH - n, "%s/", dnames[rndn(NELEM(dnames))]);
	r = rndn(100);
	if (want_dir ? r < 85 : r < 10)
		snprintf(out + n, FSX_PATH - n, "%s", dnames[rndn(NELEM(dnames))]);
	else if (r < 95)
		snprintf(out + n, FSX_PATH - n, "%s", fnames[rndn(NELEM(fnames))]);
	else
		snprintf(out + n, FSX_PATH - n, "%s", lnames[rndn(NELEM(lnames))]);
}

static void gen_data(unsigned char *buf, size_t len)
{
	size_t i = 0;

	while (i < len) {
		uint64_t v = rnd();
		size_t k;

		for (k = 0; k < 8 && i < len; k++, i++)
			buf[i] = (unsigned char)(v >> (8 * k));
	}
}

/* Sizes skewed small, with the occasional large one. */
static size_t gen_len(void)
{
	uint64_t r = rndn(100);

	if (r < 40)
		return 1 + rndn(512);
	if (r < 80)
		return 1 + rndn(8192);
	if (r < 97)
		return 1 + rndn(65536);
	return 1 + rndn(opt_maxsize / 2 > 1 ? opt_maxsize / 2 : 1);
}

/* Offsets relative to the current size: inside, at EOF, or past it (holes). */
static off_t gen_off(off_t size, size_t len)
{
	uint64_t r = rndn(100);
	off_t max = (off_t)opt_maxsize - (off_t)len;
	off_t o;

	if (max < 0)
		max = 0;
	if (r < 45)
		o = size ? (off_t)rndn((uint64_t)size) : 0;
	else if (r < 70)
		o = size;
	else
		o = (off_t)rndn((uint64_t)max + 1);
	return o > max ? max : o;
}

static int slot_pick(int want_open)
{
	int s = (int)rndn(FSX_SLOTS), i;

	for (i = 0; i < FSX_SLOTS; i++) {
		int k = (s + i) % FSX_SLOTS;

		if (slots[k].open == want_open)
			return k;
	}
	return -1;
}

/* Size of a slot's file as side A sees it (both agree, or a divergence was reported). */
static off_t slot_size(int slot)
{
	struct stat st;

	if (slot < 0 || !slots[slot].open || fstat(sides[0].fd[slot], &st) < 0)
		return 0;
	return S_ISREG(st.st_mode) ? st.st_size : 0;
}

/* -1 mode: would opening path (following links, as open does) reach an already open file? */
static int path_is_open(const char *path)
{
	struct stat st, fst;
	int i;

	if (fstatat(sides[0].rootfd, path, &st, 0) < 0)
		return 0;
	for (i = 0; i < FSX_SLOTS; i++)
		if (slots[i].open && fstat(sides[0].fd[i], &fst) == 0 &&
		    fst.st_dev == st.st_dev && fst.st_ino == st.st_ino)
			return 1;
	return 0;
}

static enum op_kind pick_kind(void)
{
	unsigned total = 0, r;
	int k;

	for (k = 0; k < OP_NKINDS; k++)
		total += op_weight[k];
	r = (unsigned)rndn(total);
	for (k = 0; k < OP_NKINDS; k++) {
		if (r < op_weight[k])
			return (enum op_kind)k;
		r -= op_weight[k];
	}
	return OP_STAT;
}

static int fd_kind(enum op_kind k)
{
	switch (k) {
	case OP_CLOSE: case OP_WRITE: case OP_PWRITE: case OP_READ: case OP_PREAD: case OP_LSEEK:
	case OP_FTRUNCATE: case OP_FSYNC: case OP_FDATASYNC: case OP_MMAPWRITE: case OP_MMAPREAD:
	case OP_FCHMOD: case OP_FALLOCATE: case OP_COPYRANGE:
		return 1;
	default:
		return 0;
	}
}

static mode_t gen_mode(void)
{
	static const mode_t common[] = { 0644, 0600, 0666, 0755, 0700, 0640, 0444, 0777 };

	if (rndn(4))
		return common[rndn(NELEM(common))];
	return (mode_t)rndn(01000);
}

static void gen_op(struct op *op)
{
	static unsigned char *databuf;
	static const int oflags[] = {
		O_RDWR | O_CREAT, O_RDWR | O_CREAT, O_WRONLY | O_CREAT | O_TRUNC,
		O_RDWR | O_CREAT | O_TRUNC, O_RDWR | O_CREAT | O_EXCL, O_WRONLY | O_CREAT | O_EXCL,
		O_RDWR, O_RDONLY, O_WRONLY, O_WRONLY | O_APPEND, O_RDWR | O_APPEND | O_CREAT,
		O_RDONLY | O_DIRECTORY,
	};
	int tries;

	if (!databuf && !(databuf = malloc(opt_maxsize + 1)))
		die("out of memory");
	memset(op, 0, sizeof(*op));
	op->data = databuf;
	op->slot = op->slot2 = -1;
	for (tries = 0; tries < 100; tries++) {
		op->kind = pick_kind();
		if (fd_kind(op->kind)) {
			op->slot = slot_pick(1);
			if (op->slot < 0)
				continue;
		}
		if (op->kind == OP_OPEN && (op->slot = slot_pick(0)) < 0)
			continue;
		break;
	}
	if (tries == 100)
		op->kind = OP_STAT;

	switch (op->kind) {
	case OP_OPEN:
		op->flags = oflags[rndn(NELEM(oflags))];
		op->mode = gen_mode();
		gen_path(op->path, (op->flags & O_DIRECTORY) != 0);
		if (opt_single && path_is_open(op->path)) {
			/* Second opener of an open upload: make it a stat of the same path. */
			op->kind = OP_STAT;
			op->slot = -1;
		}
		break;
	case OP_WRITE:
		op->len = gen_len();
		gen_data(op->data, op->len);
		break;
	case OP_PWRITE:
		op->len = gen_len();
		op->off = gen_off(slot_size(op->slot), op->len);
		gen_data(op->data, op->len);
		break;
	case OP_READ:
		op->len = gen_len();
		break;
	case OP_PREAD:
		op->len = gen_len();
		op->off = gen_off(slot_size(op->slot), 0);
		break;
	case OP_LSEEK: {
		/* Where holes are reported is up to each file system: only with -H. */
		static const int wh[] = { SEEK_SET, SEEK_CUR, SEEK_END, SEEK_DATA, SEEK_HOLE };

		struct stat st;

		op->whence = wh[rndn(opt_holes ? NELEM(wh) : 3)];
		op->off = op->whence == SEEK_CUR || op->whence == SEEK_END ?
			(off_t)rndn(8192) - 4096 : gen_off(slot_size(op->slot), 0);
		/* Directory offsets are cookies private to each file system: only rewind. */
		if (fstat(sides[0].fd[op->slot], &st) == 0 && !S_ISREG(st.st_mode)) {
			op->whence = SEEK_SET;
			op->off = 0;
		}
		break;
	}
	case OP_FTRUNCATE:
	case OP_TRUNCATE:
		op->off = rndn(3) ? gen_off(slot_size(op->slot), 0) : 0;
		if (op->kind == OP_TRUNCATE)
			gen_path(op->path, 0);
		break;
	case OP_MMAPWRITE:
	case OP_MMAPREAD:
		/* Offsets inside the mapping are chosen at run time from the (common) size. */
		op->off = (off_t)rnd() & INT64_MAX;
		op->len = gen_len();
		if (op->kind == OP_MMAPWRITE)
			gen_data(op->data, op->len);
		break;
	case OP_RENAME:
		gen_path(op->path, rndn(4) == 0);
		gen_path(op->path2, rndn(4) == 0);
		op->flags = rndn(10) < 7 ? 0 : rndn(2) ? RENAME_NOREPLACE : RENAME_EXCHANGE;
		break;
	case OP_LINK:
		gen_path(op->path, 0);
		gen_path(op->path2, 0);
		break;
	case OP_UNLINK:
	case OP_STAT:
	case OP_READLINK:
		gen_path(op->path, rndn(6) == 0);
		break;
	case OP_MKDIR:
	case OP_RMDIR:
		gen_path(op->path, 1);
		op->mode = rndn(4) ? 0755 : gen_mode() | 0700;
		break;
	case OP_READDIR:
		gen_path(op->path, 1);
		if (rndn(3) == 0)
			op->path[0] = '\0';	/* the root */
		break;
	case OP_CHMOD:
		gen_path(op->path, rndn(5) == 0);
		op->mode = gen_mode();
		break;
	case OP_FCHMOD:
		op->mode = gen_mode();
		break;
	case OP_SYMLINK: {
		/*
		 * Target relative to the link's directory and never "..": renames move links
		 * and their directories, so a ".." target could later point outside the tree.
		 */
		uint64_t r = rndn(10);

		gen_path(op->path, 0);
		if (rndn(2))
			memcpy(op->path + strlen(op->path) - 2, lnames[rndn(NELEM(lnames))], 3);
		if (r < 5)
			snprintf(op->path2, FSX_PATH, "%s", fnames[rndn(NELEM(fnames))]);
		else if (r < 7)
			snprintf(op->path2, FSX_PATH, "%s/%s", dnames[rndn(NELEM(dnames))],
				 fnames[rndn(NELEM(fnames))]);
		else if (r < 9)
			snprintf(op->path2, FSX_PATH, "%s", dnames[rndn(NELEM(dnames))]);
		else
			snprintf(op->path2, FSX_PATH, "nowhere");
		break;
	}
	case OP_FALLOCATE: {
		static const int fm[] = { 0, 0, FALLOC_FL_KEEP_SIZE,
					  FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE };

		op->flags = fm[rndn(NELEM(fm))];
		op->len = gen_len();
		op->off = gen_off(slot_size(op->slot), op->len);
		break;
	}
	case OP_COPYRANGE:
		op->slot2 = slot_pick(1);
		op->len = gen_len();
		op->off = gen_off(slot_size(op->slot), 0);
		op->off2 = gen_off(slot_size(op->slot2), op->len);
		break;
	default:
		break;
	}
}

static void describe(const struct op *op, char *buf, size_t n)
{
	const char *sp = op->slot >= 0 ? slots[op->slot].path : "";

	switch (op->kind) {
	case OP_OPEN:
		snprintf(buf, n, "open slot %d \"%s\" flags=0%o mode=0%o", op->slot, op->path,
			 op->flags, op->mode);
		break;
	case OP_WRITE: case OP_READ:
		snprintf(buf, n, "%s slot %d (%s) len=%zu", op_names[op->kind], op->slot, sp, op->len);
		break;
	case OP_PWRITE: case OP_PREAD: case OP_FALLOCATE:
		snprintf(buf, n, "%s slot %d (%s) off=%lld len=%zu mode=%d", op_names[op->kind],
			 op->slot, sp, (long long)op->off, op->len, op->flags);
		break;
	case OP_MMAPWRITE: case OP_MMAPREAD:
		snprintf(buf, n, "%s slot %d (%s) seed-off=%llu len<=%zu", op_names[op->kind],
			 op->slot, sp, (unsigned long long)op->off, op->len);
		break;
	case OP_LSEEK:
		snprintf(buf, n, "lseek slot %d (%s) off=%lld whence=%d", op->slot, sp,
			 (long long)op->off, op->whence);
		break;
	case OP_FTRUNCATE:
		snprintf(buf, n, "ftruncate slot %d (%s) size=%lld", op->slot, sp, (long long)op->off);
		break;
	case OP_TRUNCATE:
		snprintf(buf, n, "truncate \"%s\" size=%lld", op->path, (long long)op->off);
		break;
	case OP_CLOSE: case OP_FSYNC: case OP_FDATASYNC:
		snprintf(buf, n, "%s slot %d (%s)", op_names[op->kind], op->slot, sp);
		break;
	case OP_FCHMOD:
		snprintf(buf, n, "fchmod slot %d (%s) 0%o", op->slot, sp, op->mode);
		break;
	case OP_RENAME:
		snprintf(buf, n, "rename \"%s\" -> \"%s\" flags=%s", op->path, op->path2,
			 op->flags == RENAME_NOREPLACE ? "NOREPLACE" :
			 op->flags == RENAME_EXCHANGE ? "EXCHANGE" : "0");
		break;
	case OP_LINK:
		snprintf(buf, n, "link \"%s\" -> \"%s\"", op->path, op->path2);
		break;
	case OP_SYMLINK:
		snprintf(buf, n, "symlink \"%s\" -> target \"%s\"", op->path, op->path2);
		break;
	case OP_MKDIR: case OP_CHMOD:
		snprintf(buf, n, "%s \"%s\" 0%o", op_names[op->kind], op->path, op->mode);
		break;
	case OP_COPYRANGE:
		snprintf(buf, n, "copy_file_range slot %d off=%lld -> slot %d off=%lld len=%zu",
			 op->slot, (long long)op->off, op->slot2, (long long)op->off2, op->len);
		break;
	default:
		snprintf(buf, n, "%s \"%s\"", op_names[op->kind], op->path);
		break;
	}
}

static sigjmp_buf bus_jmp;
static volatile sig_atomic_t bus_armed;

static void on_sigbus(int sig)
{
	if (bus_armed)
		siglongjmp(bus_jmp, 1);
	signal(sig, SIG_DFL);
	raise(sig);
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int ignored(const char *name)
{
	int i;

	for (i = 0; i < nignore; i++)
		if (!strcmp(name, opt_ignore[i]))
			return 1;
	return 0;
}

/* Sorted names of a directory (without . and ..); *n entries; NULL + errno on failure. */
static char **list_dir(int dirfd, const char *path, size_t *n)
{
	int fd = openat(dirfd, *path ? path : ".", O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
	DIR *d;
	struct dirent *de;
	char **v = NULL;
	size_t cap = 0;

	*n = 0;
	if (fd < 0)
		return NULL;
	if (!(d = fdopendir(fd))) {
		close(fd);
		return NULL;
	}
	errno = 0;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (!*path && ignored(de->d_name))
			continue;
		if (*n == cap) {
			cap = cap ? 2 * cap : 32;
			if (!(v = realloc(v, cap * sizeof(*v))))
				die("out of memory");
		}
		if (!(v[(*n)++] = strdup(de->d_name)))
			die("out of memory");
	}
	closedir(d);
	if (!v && !(v = malloc(sizeof(*v))))
		die("out of memory");
	qsort(v, *n, sizeof(*v), cmp_names);
	return v;
}

static void free_list(char **v, size_t n)
{
	size_t i;

	for (i = 0; i < n && v; i++)
		free(v[i]);
	free(v);
}

static void stat_into(struct side *s, struct result *r, const char *path, int slot)
{
	int i = r->nstat++;

	if (slot >= 0) {
		snprintf(r->stname[i], sizeof(r->stname[i]), "fd slot %d", slot);
		r->st[i].err = fstat(s->fd[slot], &r->st[i].st) < 0 ? errno : 0;
	} else {
		snprintf(r->stname[i], sizeof(r->stname[i]), "\"%s\"", *path ? path : ".");
		r->st[i].err = fstatat(s->rootfd, *path ? path : ".", &r->st[i].st,
				       AT_SYMLINK_NOFOLLOW) < 0 ? errno : 0;
	}
}

static void stat_parent(struct side *s, struct result *r, const char *path)
{
	char dir[FSX_PATH];
	char *slash;

	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (slash)
		*slash = '\0';
	else
		dir[0] = '\0';
	stat_into(s, r, dir, -1);
}

/* Execute op on one side; fill r. */
static void exec_op(struct op *op, struct side *s, struct result *r)
{
	int fd = op->slot >= 0 ? s->fd[op->slot] : -1;
	long long ret = 0;

	errno = 0;
	switch (op->kind) {
	case OP_OPEN:
		ret = openat(s->rootfd, op->path, op->flags | O_CLOEXEC, op->mode);
		if (ret >= 0) {
			s->fd[op->slot] = (int)ret;
			ret = 0;
		}
		break;
	case OP_CLOSE:
		ret = close(fd);
		s->fd[op->slot] = -1;
		break;
	case OP_WRITE:
		ret = write(fd, op->data, op->len);
		break;
	case OP_PWRITE:
		ret = pwrite(fd, op->data, op->len, op->off);
		break;
	case OP_READ:
	case OP_PREAD:
		if (!(r->buf = malloc(op->len)))
			die("out of memory");
		ret = op->kind == OP_READ ? read(fd, r->buf, op->len) :
			pread(fd, r->buf, op->len, op->off);
		break;
	case OP_LSEEK:
		ret = lseek(fd, op->off, op->whence);
		break;
	case OP_FTRUNCATE:
		ret = ftruncate(fd, op->off);
		break;
	case OP_TRUNCATE: {
		char full[4096];

		snprintf(full, sizeof(full), "%s/%s", s->root, op->path);
		ret = truncate(full, op->off);
		break;
	}
	case OP_FSYNC:
		ret = fsync(fd);
		break;
	case OP_FDATASYNC:
		ret = fdatasync(fd);
		break;
	case OP_MMAPWRITE:
	case OP_MMAPREAD: {
		struct stat st;
		unsigned char *map;
		int wr = op->kind == OP_MMAPWRITE;
		size_t off, len;

		if (fstat(fd, &st) < 0) {
			ret = -1;
			break;
		}
		if (!S_ISREG(st.st_mode) || st.st_size == 0) {
			ret = -2;	/* nothing to map; both sides must agree on that */
			errno = 0;
			break;
		}
		map = mmap(NULL, (size_t)st.st_size, wr ? PROT_READ | PROT_WRITE : PROT_READ,
			   MAP_SHARED, fd, 0);
		if (map == MAP_FAILED) {
			ret = -1;
			break;
		}
		off = (size_t)op->off % (size_t)st.st_size;
		len = op->len;
		if (len > (size_t)st.st_size - off)
			len = (size_t)st.st_size - off;
		if (sigsetjmp(bus_jmp, 1)) {
			bus_armed = 0;
			munmap(map, (size_t)st.st_size);
			ret = -3;	/* SIGBUS */
			errno = EFAULT;
			break;
		}
		bus_armed = 1;
		if (wr) {
			memcpy(map + off, op->data, len);
			bus_armed = 0;
			if (msync(map, (size_t)st.st_size, MS_SYNC) < 0) {
				int e = errno;

				munmap(map, (size_t)st.st_size);
				errno = e;
				ret = -1;
				break;
			}
		} else {
			if (!(r->buf = malloc(len ? len : 1)))
				die("out of memory");
			memcpy(r->buf, map + off, len);
			bus_armed = 0;
		}
		munmap(map, (size_t)st.st_size);
		ret = (long long)len;
		errno = 0;
		break;
	}
	case OP_RENAME:
		ret = renameat2(s->rootfd, op->path, s->rootfd, op->path2, (unsigned)op->flags);
		break;
	case OP_LINK:
		ret = linkat(s->rootfd, op->path, s->rootfd, op->path2, 0);
		break;
	case OP_SYMLINK:
		ret = symlinkat(op->path2, s->rootfd, op->path);
		break;
	case OP_UNLINK:
		ret = unlinkat(s->rootfd, op->path, 0);
		break;
	case OP_MKDIR:
		ret = mkdirat(s->rootfd, op->path, op->mode);
		break;
	case OP_RMDIR:
		ret = unlinkat(s->rootfd, op->path, AT_REMOVEDIR);
		break;
	case OP_CHMOD:
		ret = fchmodat(s->rootfd, op->path, op->mode, 0);
		break;
	case OP_FCHMOD:
		ret = fchmod(fd, op->mode);
		break;
	case OP_STAT: {
		struct stat st;

		/* Following links, unlike the post-op lstat. */
		ret = fstatat(s->rootfd, op->path, &st, 0);
		if (ret == 0)
			snprintf(r->str, sizeof(r->str), "mode=0%o nlink=%lu size=%lld",
				 st.st_mode, opt_nonlink ? 0UL : (unsigned long)st.st_nlink,
				 S_ISDIR(st.st_mode) ? 0LL : (long long)st.st_size);
		break;
	}
	case OP_READLINK:
		ret = readlinkat(s->rootfd, op->path, r->str, sizeof(r->str) - 1);
		if (ret >= 0)
			r->str[ret] = '\0';
		break;
	case OP_FALLOCATE:
		ret = fallocate(fd, op->flags, op->off, (off_t)op->len);
		break;
	case OP_COPYRANGE: {
		loff_t in = op->off, out = op->off2;

		ret = copy_file_range(fd, &in, s->fd[op->slot2], &out, op->len, 0);
		break;
	}
	case OP_READDIR: {
		size_t n, i, k = 0;
		char **v = list_dir(s->rootfd, op->path, &n);

		if (!v) {
			ret = -1;
			break;
		}
		for (i = 0; i < n; i++)
			k += snprintf(r->str + k, sizeof(r->str) - k, "%s ", v[i]);
		free_list(v, n);
		errno = 0;
		break;
	}
	default:
		break;
	}
	r->ret = ret;
	r->err = ret < 0 ? errno : 0;

	/* Post-op state of everything the op touched. */
	if (op->slot >= 0 && s->fd[op->slot] >= 0)
		stat_into(s, r, "", op->slot);
	if (op->slot2 >= 0 && s->fd[op->slot2] >= 0)
		stat_into(s, r, "", op->slot2);
	if (!fd_kind(op->kind) && op->kind != OP_READDIR) {
		if (op->kind != OP_OPEN || ret < 0)
			stat_into(s, r, op->path, -1);
		stat_parent(s, r, op->path);
	}
	if (op->kind == OP_RENAME || op->kind == OP_LINK)
		stat_into(s, r, op->path2, -1);
}

/* Which metadata we hold both sides to: type, permission bits, link count, size (not dirs). */
static int stat_differs(const struct stat *a, const struct stat *b, char *why, size_t n)
{
	if ((a->st_mode & S_IFMT) != (b->st_mode & S_IFMT))
		return snprintf(why, n, "type 0%o vs 0%o", a->st_mode & S_IFMT, b->st_mode & S_IFMT);
	if ((a->st_mode & 07777) != (b->st_mode & 07777))
		return snprintf(why, n, "mode 0%o vs 0%o", a->st_mode & 07777, b->st_mode & 07777);
	if (!opt_nonlink && a->st_nlink != b->st_nlink)
		return snprintf(why, n, "nlink %lu vs %lu", (unsigned long)a->st_nlink,
				(unsigned long)b->st_nlink);
	if (!S_ISDIR(a->st_mode) && a->st_size != b->st_size)
		return snprintf(why, n, "size %lld vs %lld", (long long)a->st_size,
				(long long)b->st_size);
	return 0;
}

/*
 * POSIX lets rename and rmdir of a non-empty directory fail with either EEXIST or ENOTEMPTY:
 * ext4 says ENOTEMPTY, XFS EEXIST, so with the mount on one and the reference on the other
 * (make backing-check) the two are one outcome.
 */
static bool same_err(int a, int b)
{
	return a == b || ((a == EEXIST || a == ENOTEMPTY) && (b == EEXIST || b == ENOTEMPTY));
}

static void compare_results(const char *desc, const struct op *op, struct result *ra,
			    struct result *rb)
{
	int i;
	char why[256];

	if (ra->ret != rb->ret || !same_err(ra->err, rb->err))
		diverge("%s: A returned %lld (%s), B returned %lld (%s)", desc, ra->ret,
			errname(ra->err), rb->ret, errname(rb->err));
	if (ra->buf && rb->buf && ra->ret > 0 && memcmp(ra->buf, rb->buf, (size_t)ra->ret)) {
		long long k = 0;

		while (k < ra->ret && ra->buf[k] == rb->buf[k])
			k++;
		diverge("%s: data read differs at byte %lld of %lld (A 0x%02x, B 0x%02x)", desc, k,
			ra->ret, ra->buf[k], rb->buf[k]);
	}
	if (strcmp(ra->str, rb->str))
		diverge("%s: A gave \"%s\", B gave \"%s\"", desc, ra->str, rb->str);
	if (ra->nstat != rb->nstat)
		diverge("%s: internal: stat count %d vs %d", desc, ra->nstat, rb->nstat);
	for (i = 0; i < ra->nstat; i++) {
		if (ra->st[i].err != rb->st[i].err)
			diverge("%s: afterwards stat %s: A %s, B %s", desc, ra->stname[i],
				errname(ra->st[i].err), errname(rb->st[i].err));
		if (!ra->st[i].err && stat_differs(&ra->st[i].st, &rb->st[i].st, why, sizeof(why)))
			diverge("%s: afterwards stat %s: %s", desc, ra->stname[i], why);
	}
	(void)op;
}

/* Compare one regular file's contents. */
static void compare_file(const char *path)
{
	int fa = openat(sides[0].rootfd, path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	int ea = fa < 0 ? errno : 0, fb, eb;
	static unsigned char ba[65536], bb[65536];
	long long pos = 0;

	fb = openat(sides[1].rootfd, path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	eb = fb < 0 ? errno : 0;
	if (ea != eb)
		diverge("check: open \"%s\" for reading: A %s, B %s", path, errname(ea),
			errname(eb));
	if (fa < 0)
		return;		/* the same refusal (mode 0 as non-root): nothing to compare */
	for (;;) {
		ssize_t na = read(fa, ba, sizeof(ba));
		ssize_t nb = read(fb, bb, sizeof(bb));

		if (na < 0 || nb < 0)
			diverge("check: read \"%s\" at %lld: A %zd (%s), B %zd", path, pos, na,
				errname(na < 0 ? errno : 0), nb);
		if (na != nb) {
			/* Short reads are legal; refill the shorter side before judging. */
			while (na < nb) {
				ssize_t k = read(fa, ba + na, (size_t)(nb - na));

				if (k <= 0)
					break;
				na += k;
			}
			while (nb < na) {
				ssize_t k = read(fb, bb + nb, (size_t)(na - nb));

				if (k <= 0)
					break;
				nb += k;
			}
			if (na != nb)
				diverge("check: \"%s\": A has %lld bytes, B %lld", path, pos + na,
					pos + nb);
		}
		if (memcmp(ba, bb, (size_t)na)) {
			ssize_t k = 0;

			while (ba[k] == bb[k])
				k++;
			diverge("check: \"%s\": contents differ at byte %lld (A 0x%02x, B 0x%02x)",
				path, pos + k, ba[k], bb[k]);
		}
		if (na == 0)
			break;
		pos += na;
	}
	close(fa);
	close(fb);
}

static void check_tree(const char *dir, unsigned long long *nobj)
{
	size_t na, nb, i;
	char **va = list_dir(sides[0].rootfd, dir, &na);
	int ea = errno;
	char **vb = list_dir(sides[1].rootfd, dir, &nb);
	int eb = errno;

	if (!va && !vb && ea == eb)
		return;		/* both refuse the same way (a 0 mode directory as non-root) */
	if (!va || !vb)
		diverge("check: list \"%s\": A %s, B %s", dir, errname(va ? 0 : ea),
			errname(vb ? 0 : eb));
	for (i = 0; i < na || i < nb; i++) {
		if (i >= na || i >= nb || strcmp(va[i], vb[i])) {
			char la[2048] = "", lb[2048] = "";
			size_t k, ka = 0, kb = 0;

			for (k = 0; k < na; k++)
				ka += snprintf(la + ka, sizeof(la) - ka, "%s ", va[k]);
			for (k = 0; k < nb; k++)
				kb += snprintf(lb + kb, sizeof(lb) - kb, "%s ", vb[k]);
			diverge("check: directory \"%s\" lists differ:\n  A: %s\n  B: %s",
				*dir ? dir : ".", la, lb);
		}
	}
	for (i = 0; i < na; i++) {
		char path[4096], why[256];
		struct stat sa, sb;
		int ra, rb;

		snprintf(path, sizeof(path), "%s%s%s", dir, *dir ? "/" : "", va[i]);
		ra = fstatat(sides[0].rootfd, path, &sa, AT_SYMLINK_NOFOLLOW) < 0 ? errno : 0;
		rb = fstatat(sides[1].rootfd, path, &sb, AT_SYMLINK_NOFOLLOW) < 0 ? errno : 0;
		if (ra != rb)
			diverge("check: lstat \"%s\": A %s, B %s", path, errname(ra), errname(rb));
		if (ra)
			continue;
		if (stat_differs(&sa, &sb, why, sizeof(why)))
			diverge("check: \"%s\": %s", path, why);
		(*nobj)++;
		if (S_ISREG(sa.st_mode)) {
			compare_file(path);
		} else if (S_ISLNK(sa.st_mode)) {
			char ta[4096], tb[4096];
			ssize_t la = readlinkat(sides[0].rootfd, path, ta, sizeof(ta) - 1);
			ssize_t lb = readlinkat(sides[1].rootfd, path, tb, sizeof(tb) - 1);

			if (la < 0 || lb < 0 || la != lb || memcmp(ta, tb, (size_t)la))
				diverge("check: symlink \"%s\" targets differ", path);
		} else if (S_ISDIR(sa.st_mode)) {
			check_tree(path, nobj);
		}
	}
	free_list(va, na);
	free_list(vb, nb);
}

static void close_all(const char *why)
{
	int i;

	for (i = 0; i < FSX_SLOTS; i++) {
		struct op op = { .kind = OP_CLOSE, .slot = i, .slot2 = -1 };
		struct result ra = { 0 }, rb = { 0 };
		char desc[FSX_DESC];

		if (!slots[i].open)
			continue;
		snprintf(desc, sizeof(desc), "step %llu: close slot %d (%s) (%s)", step, i,
			 slots[i].path, why);
		record("%s", desc);
		exec_op(&op, &sides[0], &ra);
		exec_op(&op, &sides[1], &rb);
		compare_results(desc, &op, &ra, &rb);
		slots[i].open = 0;
	}
}

static void full_check(const char *why)
{
	unsigned long long nobj = 0;

	if (opt_quiesce)
		close_all(why);
	check_tree("", &nobj);
	if (opt_verbose)
		fprintf(stderr, "step %llu: full check (%s): %llu objects agree\n", step, why, nobj);
}

/*
 * -F: prove the comparison can fail.  Flip the first byte of B's "f0" (creating it if absent),
 * behind fsx's back; the next full check (or a later read) must report it.
 */
static void inject_fault(void)
{
	unsigned char b = 0;
	int fd = openat(sides[1].rootfd, "f0", O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);

	record("step %llu: (injected fault on B: flip byte 0 of f0)", step);
	if (fd < 0) {
		/* f0 is a directory or a link: add a stray entry instead. */
		fd = openat(sides[1].rootfd, "injected", O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
		if (fd >= 0)
			close(fd);
		return;
	}
	if (pread(fd, &b, 1, 0) != 1)
		b = 0;
	b = (unsigned char)~b;
	if (pwrite(fd, &b, 1, 0) != 1)
		die("inject: %s", strerror(errno));
	close(fd);
}

static void usage(void)
{
	fprintf(stderr,
		"usage: fsx [-s SEED] [-n OPS] [-c N] [-S MAXSIZE] [-q] [-1] [-H] [-v] [-b STEP]\n"
		"           [-F STEP] [-X OP]... [-i NAME]... DIR_A DIR_B\n"
		"       fsx -C [-i NAME]... DIR_A DIR_B\n"
		"  -s SEED   random seed (default: time-based; printed)\n"
		"  -n OPS    operations to run (default 10000)\n"
		"  -c N      full tree comparison every N steps, 0 = only at the end (default 1000)\n"
		"  -S BYTES  maximum file size (default 262144)\n"
		"  -q        close all descriptors before each full comparison (scan-at-close)\n"
		"  -1        never open a file already open in another slot (single opener)\n"
		"  -P        uploads only: close all descriptors before any path operation, readdir or\n"
		"            check, so names are only looked at when no upload is in flight (implies -q)\n"
		"  -H        also compare lseek SEEK_DATA/SEEK_HOLE results\n"
		"  -F STEP   self-test: after STEP, change one byte (or add a file) on B only\n"
		"  -L        do not compare link counts (diagnosis only)\n"
		"  -C        compare the two existing trees once and exit (no operations)\n"
		"  -i NAME   leave top-level entry NAME out of every comparison (repeatable)\n"
		"  -v        print every operation; -b STEP: print from STEP on\n"
		"  -X OP     exclude an operation (");
	for (int k = 0; k < OP_NKINDS; k++)
		fprintf(stderr, "%s%s", op_names[k], k + 1 < OP_NKINDS ? " " : ")\n");
	exit(2);
}

static int dir_is_empty(int fd)
{
	size_t n;
	char **v = list_dir(fd, "", &n);

	if (!v)
		return 0;
	free_list(v, n);
	return n == 0;
}

int main(int argc, char **argv)
{
	int c, i, k;
	struct sigaction sa;
	int seeded = 0;

	while ((c = getopt(argc, argv, "s:n:c:S:q1PHLvb:X:F:Ci:h")) != -1) {
		switch (c) {
		case 's': opt_seed = strtoull(optarg, NULL, 0); seeded = 1; break;
		case 'n': opt_nops = strtoull(optarg, NULL, 0); break;
		case 'c': opt_check = strtoull(optarg, NULL, 0); break;
		case 'S': opt_maxsize = strtoull(optarg, NULL, 0); break;
		case 'q': opt_quiesce = 1; break;
		case '1': opt_single = 1; break;
		case 'H': opt_holes = 1; break;
		case 'C': opt_compare_only = 1; break;
		case 'L': opt_nonlink = 1; break;
		case 'P': opt_publish = 1; opt_quiesce = 1; break;
		case 'i':
			if (nignore == (int)NELEM(opt_ignore))
				die("-i: at most %zu names", NELEM(opt_ignore));
			opt_ignore[nignore++] = optarg;
			break;
		case 'F': opt_inject = strtoull(optarg, NULL, 0); break;
		case 'v': opt_verbose = 1; break;
		case 'b': opt_verbose_from = strtoull(optarg, NULL, 0); break;
		case 'X':
			for (k = 0; k < OP_NKINDS; k++)
				if (!strcmp(optarg, op_names[k]))
					break;
			if (k == OP_NKINDS)
				die("-X: unknown operation '%s'", optarg);
			op_weight[k] = 0;
			break;
		default: usage();
		}
	}
	if (argc - optind != 2 || opt_maxsize < 16)
		usage();
	if (!seeded) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		opt_seed = (uint64_t)ts.tv_sec * 1000003u ^ (uint64_t)ts.tv_nsec ^ (uint64_t)getpid();
	}
	rng_state = opt_seed;
	umask(022);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_sigbus;
	sigaction(SIGBUS, &sa, NULL);

	for (i = 0; i < 2; i++) {
		sides[i].label = i ? "B" : "A";
		sides[i].root = argv[optind + i];
		sides[i].rootfd = open(sides[i].root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (sides[i].rootfd < 0)
			die("%s: %s", sides[i].root, strerror(errno));
		if (!opt_compare_only && !dir_is_empty(sides[i].rootfd))
			die("%s: not an empty directory", sides[i].root);
		for (k = 0; k < FSX_SLOTS; k++)
			sides[i].fd[k] = -1;
	}
	if (opt_compare_only) {
		full_check("compare");
		printf("fsx: %s and %s agree\n", sides[0].root, sides[1].root);
		return 0;
	}
	printf("fsx: seed %" PRIu64 ", %llu operations, A=%s B=%s\n", opt_seed, opt_nops,
	       sides[0].root, sides[1].root);
	fflush(stdout);

	for (step = 0; step < opt_nops; step++) {
		struct op op;
		struct result ra, rb;
		char desc[FSX_DESC], d[FSX_DESC - 32];

		gen_op(&op);
		if (opt_publish && !fd_kind(op.kind) && op.kind != OP_OPEN)
			close_all("-P");
		describe(&op, d, sizeof(d));
		snprintf(desc, sizeof(desc), "step %llu: %s", step, d);
		record("%s", desc);
		memset(&ra, 0, sizeof(ra));
		memset(&rb, 0, sizeof(rb));
		exec_op(&op, &sides[0], &ra);
		exec_op(&op, &sides[1], &rb);
		compare_results(desc, &op, &ra, &rb);
		if (opt_verbose || step >= opt_verbose_from)
			fprintf(stderr, "    = %lld %s\n", ra.ret, errname(ra.err));
		free(ra.buf);
		free(rb.buf);
		if (ra.ret < 0)
			nfail[op.kind]++;
		else
			nok[op.kind]++;
		if (op.kind == OP_OPEN && ra.ret == 0) {
			slots[op.slot].open = 1;
			slots[op.slot].flags = op.flags;
			snprintf(slots[op.slot].path, FSX_PATH, "%s", op.path);
		} else if (op.kind == OP_CLOSE) {
			slots[op.slot].open = 0;
		}
		if (step == opt_inject)
			inject_fault();
		if (opt_check && (step + 1) % opt_check == 0)
			full_check("periodic");
	}
	step = opt_nops;
	close_all("end");
	full_check("end");
	/* The mix actually run, so a change that makes most ops fail early is noticed. */
	printf("fsx: succeeded/failed:");
	for (k = 0; k < OP_NKINDS; k++)
		if (nok[k] + nfail[k])
			printf(" %s %llu/%llu", op_names[k], nok[k], nfail[k]);
	printf("\nfsx: %llu operations, no divergence (seed %" PRIu64 ")\n", opt_nops, opt_seed);
	return 0;
}
