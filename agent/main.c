/* vpcprobe: find out why Cloud Run says "connection refused". */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

#include "agent/cli.h"
#include "agent/log.h"
#include "vp_build.h"

static const char usage[] =
	"Usage: vpcprobe COMMAND [OPTION...] [ARG...]\n"
	"\n"
	"Probes the private targets that Cloud Run reaches through a Serverless VPC\n"
	"Access connector (Cloud SQL, Memorystore Redis, services on VMs) and tells\n"
	"why a connection fails: refused, timeout, unreachable (and which ICMP\n"
	"error), or the agent's own local error, with the likely cause and the fix.\n"
	"\n"
	"Commands:\n"
	"  check [-c FILE] [--json] [--timeout-ms MS] [URL...]\n"
	"                      probe once, print the results, exit 0 when all are ok\n"
	"  run [-c FILE]       the daemon: probe on schedule, log verdict changes\n"
	"  listeners [--json] [PORT...]\n"
	"                      this host's listening TCP sockets, and on which address\n"
	"  validate -c FILE    check a configuration file and print every error\n"
	"  beacon --listen ADDR:PORT [--expect-from CIDR]... [--json]\n"
	"                      answer on a port and record who reaches it, from where\n"
	"  diagnose [--exports DIR] [--json] [--no-probe] [INPUT...] URL\n"
	"                      walk the flowchart for one target: gcloud's exports\n"
	"                      (connector, firewall rules, ...) and a probe\n"
	"  version             print the version\n"
	"\n"
	"Run 'vpcprobe COMMAND --help' for a command's options.\n"
	"\n"
	"Without -c, the configuration is " VP_CONFIG_DEFAULT_PATH " when it exists,\n"
	"and otherwise the embedded default: this host's ports 5432, 6379 and 8080.\n"
	"\n"
	"Exit status: 0 success, 1 a probe was not ok, 2 bad usage or bad config.\n";

static const char version_usage[] =
	"Usage: vpcprobe version\n"
	"\n"
	"Prints 'vpcprobe VERSION' on stdout and exits 0 (also: vpcprobe --version).\n";

/* Probes in flight each hold a descriptor; take all the system allows. */
static void raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= rl.rlim_max)
		return;
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
		vp_log_warning("setrlimit(RLIMIT_NOFILE, %llu): %s, ignoring",
		               (unsigned long long)rl.rlim_max, strerror(errno));
}

int main(int argc, char **argv)
{
	const char *cmd = argc > 1 ? argv[1] : NULL;

	/* A peer that closes while we write must not kill the agent. */
	signal(SIGPIPE, SIG_IGN);
	raise_nofile();

	if (!cmd) {
		fputs(usage, stderr);
		return VP_EXIT_USAGE;
	}
	if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help")) {
		fputs(usage, stdout);
		return VP_EXIT_OK;
	}
	if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
		if (argc > 2 && (!strcmp(argv[2], "-h") || !strcmp(argv[2], "--help"))) {
			fputs(version_usage, stdout);
			return VP_EXIT_OK;
		}
		if (argc > 2) {
			fprintf(stderr, "vpcprobe version: unexpected argument '%s'\n%s", argv[2],
			        version_usage);
			return VP_EXIT_USAGE;
		}
		printf("vpcprobe %s\n", VP_VERSION);
		return VP_EXIT_OK;
	}
	if (!strcmp(cmd, "check"))
		return vp_cmd_check(argc - 1, argv + 1);
	if (!strcmp(cmd, "run"))
		return vp_cmd_run(argc - 1, argv + 1);
	if (!strcmp(cmd, "listeners"))
		return vp_cmd_listeners(argc - 1, argv + 1);
	if (!strcmp(cmd, "validate"))
		return vp_cmd_validate(argc - 1, argv + 1);
	if (!strcmp(cmd, "beacon"))
		return vp_cmd_beacon(argc - 1, argv + 1);
	if (!strcmp(cmd, "diagnose"))
		return vp_cmd_diagnose(argc - 1, argv + 1);
	fprintf(stderr, "vpcprobe: unknown command '%s'; run 'vpcprobe --help' for the list\n", cmd);
	return VP_EXIT_USAGE;
}
