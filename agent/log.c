#include <stdarg.h>
#include <stdio.h>

#include "agent/log.h"

static enum vp_log_level max_level = VP_LOG_INFO;
static int journal;

void vp_log_set_level(enum vp_log_level max)
{
	max_level = max;
}

void vp_log_set_journal(int on)
{
	journal = on;
}

void vp_log(enum vp_log_level level, const char *fmt, ...)
{
	char line[2048];
	va_list ap;

	if (level > max_level)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (journal)
		fprintf(stderr, "<%d>%s\n", (int)level, line);
	else
		fprintf(stderr, "vpcprobe: %s\n", line);
}
