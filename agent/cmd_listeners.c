/* vpcprobe listeners: placeholder until the listener module lands. */
#include <stdio.h>

#include "agent/cli.h"

int vp_cmd_listeners(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fputs("vpcprobe listeners: not built yet\n", stderr);
	return VP_EXIT_USAGE;
}
