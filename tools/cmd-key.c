/*
 * cmd-key.c - `hashgate key show`: the host's Ed25519 signing key (hashdb/hostkey.h), which
 * signs the manifest of every evidence bundle `hashgate quarantine export` writes.  Prints the
 * public key and its fingerprint, to hand to hotlines out of band; makes the key on first use.
 *
 * Needs root: the private key file is root-only (0600), and making it is an admin action
 * recorded in the audit log.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hashdb/hostkey.h"
#include "tools/adm.h"
#include "tools/commands.h"

#define CMD "key"

static void usage(FILE *f)
{
	fprintf(f,
"usage: hashgate key show [--json]\n"
"\n"
"Print the public half of the host's Ed25519 signing key (PEM) and its fingerprint (SHA-256\n"
"of the public key's DER, as `openssl pkey -pubin -outform DER | sha256sum` gives it).  The\n"
"key signs the manifest of every bundle `hashgate quarantine export` writes; give the\n"
"fingerprint to whoever receives bundles through another channel than the bundles.\n"
"The key is made on first use: host-ed25519.pem (0600) in the directory of quarantine_key.\n"
"\n"
"Needs root.  Exit status: 0 success, 2 error, 64 usage error.\n");
}

static int key_show(int argc, char **argv, struct cli *cli)
{
	struct hostkey k;
	char path[4096], err[1024];
	char *pub = NULL;
	int i, r, existed;

	for (i = 1; i < argc; i++) {
		r = cli_common_option(cli, CMD, argc, argv, &i);
		if (r < 0)
			return EXIT_USAGE;
		if (r > 0)
			continue;
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			usage(stdout);
			return 0;
		}
		cli_error(CMD, "unexpected argument '%s'", argv[i]);
		return EXIT_USAGE;
	}
	if (adm_require_root(CMD, "the host's private key is root-only") < 0)
		return EXIT_ERROR;
	if (adm_host_key_path(cli, path, sizeof(path)) < 0) {
		cli_error(CMD, "the path of the host key is too long");
		return EXIT_ERROR;
	}
	existed = access(path, F_OK) == 0;
	if (!existed && adm_audit_check(cli, CMD) < 0)
		return EXIT_ERROR;
	r = hostkey_load(&k, path, true, err, sizeof(err));
	if (r < 0) {
		cli_error(CMD, "%s", err);
		return EXIT_ERROR;
	}
	r = hostkey_public_pem(&k, &pub);
	if (r < 0) {
		cli_error(CMD, "cannot print the public key: %s", strerror(-r));
		hostkey_release(&k);
		return EXIT_ERROR;
	}
	if (!existed && adm_audit(cli, CMD, "key.create", "\"algorithm\":\"ed25519\","
				  "\"fingerprint_sha256\":\"%s\"", k.fingerprint) < 0) {
		free(pub);
		hostkey_release(&k);
		return EXIT_ERROR;
	}
	if (cli->json) {
		printf("{\"algorithm\":\"ed25519\",\"fingerprint_sha256\":\"%s\",\"path\":",
		       k.fingerprint);
		adm_json_print(stdout, path);
		printf(",\"public_key_pem\":");
		adm_json_print(stdout, pub);
		printf("}\n");
	} else {
		printf("%s", pub);
		printf("fingerprint (sha256): %s\n", k.fingerprint);
		if (!cli->quiet)
			fprintf(stderr, "host key %s%s\n", path, existed ? "" : " (made now)");
	}
	free(pub);
	hostkey_release(&k);
	return 0;
}

static const struct cli_sub key_subs[] = {
	{ "show",	key_show,	"print the host's public key and its fingerprint (made if missing)" },
};

int cmd_key(int argc, char **argv, struct cli *cli)
{
	return CLI_DISPATCH(cli, CMD, argc, argv, key_subs, usage);
}
