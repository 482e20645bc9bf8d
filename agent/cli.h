/* The subcommands of the vpcprobe binary. Each returns the exit status. */
#ifndef VP_CLI_H
#define VP_CLI_H

#include "config/config.h"

#define VP_EXIT_OK 0
#define VP_EXIT_NOT_OK 1   /* a probe was not ok */
#define VP_EXIT_USAGE 2    /* bad usage or bad config */

int vp_cmd_check(int argc, char **argv);
int vp_cmd_validate(int argc, char **argv);
int vp_cmd_listeners(int argc, char **argv);
int vp_cmd_run(int argc, char **argv);
int vp_cmd_beacon(int argc, char **argv);
int vp_cmd_diagnose(int argc, char **argv);

/* Loads -c FILE when given; otherwise VP_CONFIG_DEFAULT_PATH when it exists,
 * else the embedded default. Prints the errors and returns -errno on failure. */
int vp_cli_load_config(const char *path, struct vp_config **ret);

#endif
