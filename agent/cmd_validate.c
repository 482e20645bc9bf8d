/* vpcprobe validate: check a configuration file, print every error. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/cli.h"
#include "agent/limits.h"

static const char validate_usage[] =
	"Usage: vpcprobe validate -c FILE\n"
	"\n"
	"Loads FILE as a vpcprobe configuration and checks it as the agent would at\n"
	"start: JSON syntax (with line and column), unknown keys, types, ranges,\n"
	"URLs, duplicate target names. Prints every error, one per line, each naming\n"
	"the file and the JSON path; prints a one-line summary when the file is good.\n"
	"\n"
	"Options:\n"
	"  -c, --config FILE   the file to check (required)\n"
	"  -h, --help          show this help\n"
	"\n"
	"Exit status: 0 the configuration is valid, 2 it is not (or bad usage).\n";

int vp_cli_load_config(const char *path, struct vp_config **ret)
{
	char err[VP_CONFIG_MAX_ERRORS * VP_ERR_MAX];
	int r;

	if (!path && access(VP_CONFIG_DEFAULT_PATH, F_OK) == 0)
		path = VP_CONFIG_DEFAULT_PATH;
	if (path)
		r = vp_config_load_file(path, ret, err, sizeof(err));
	else
		r = vp_config_load_string(vp_config_default_json, VP_CONFIG_EMBEDDED_NAME, ret, err,
		                          sizeof(err));
	if (r < 0) {
		/* Each line already names the file and the JSON path. */
		fputs(err, stderr);
		if (err[0] && err[strlen(err) - 1] != '\n')
			fputc('\n', stderr);
	}
	return r;
}

int vp_cmd_validate(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *path = NULL;
	struct vp_config *cfg = NULL;
	int c;

	while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			path = optarg;
			break;
		case 'h':
			fputs(validate_usage, stdout);
			return VP_EXIT_OK;
		default:
			fputs("Try 'vpcprobe validate --help'.\n", stderr);
			return VP_EXIT_USAGE;
		}
	}
	if (optind < argc && !path)
		path = argv[optind++];
	if (optind < argc) {
		fprintf(stderr, "vpcprobe validate: unexpected argument '%s'\n", argv[optind]);
		return VP_EXIT_USAGE;
	}
	if (!path) {
		fputs("vpcprobe validate: which file? Give it with -c FILE\n", stderr);
		return VP_EXIT_USAGE;
	}
	if (vp_cli_load_config(path, &cfg) < 0)
		return VP_EXIT_USAGE;
	printf("config '%s': ok (%zu targets, %zu listener checks, %zu beacons, %s)\n", path,
	       cfg->n_targets, cfg->n_listeners, cfg->n_beacons,
	       cfg->collector.url ? "collector set" : "no collector");
	vp_config_free(cfg);
	return VP_EXIT_OK;
}
