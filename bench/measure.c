/* measure: runs a program and writes what it cost, for bench/sidebyside.py.
 *
 *   measure REPORT-FILE PROGRAM [ARG...]
 *
 * Forks, execs PROGRAM (stdin, stdout and stderr inherited), waits for it
 * with wait4() and writes one JSON line to REPORT-FILE:
 *
 *   {"rc":N,"wall_s":S,"cpu_user_s":S,"cpu_sys_s":S,"peak_rss_kb":N}
 *
 * rc is the exit status, or 128 + the signal. Why a C program: ru_maxrss
 * survives execve(), so a child forked from a 25 MB Python process reports
 * at least 25 MB whatever it execs; forked from this small process it
 * reports its own peak. Exits 2 on bad usage or when it cannot run or
 * report, and 0 otherwise, whatever PROGRAM's status. */
/* wait4() and clock_gettime() under strict c17; meson's build defines it. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double secs(struct timeval tv)
{
	return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

int main(int argc, char **argv)
{
	struct timespec t0, t1;
	struct rusage ru;
	int status, rc;
	pid_t pid;
	FILE *out;

	if (argc < 3) {
		fprintf(stderr, "usage: measure REPORT-FILE PROGRAM [ARG...]\n");
		return 2;
	}
	out = fopen(argv[1], "we");
	if (out == NULL) {
		fprintf(stderr, "measure: '%s': %s\n", argv[1], strerror(errno));
		return 2;
	}
	(void)clock_gettime(CLOCK_MONOTONIC, &t0); /* cannot fail for MONOTONIC */
	pid = fork();
	if (pid < 0) {
		fprintf(stderr, "measure: fork: %s\n", strerror(errno));
		return 2;
	}
	if (pid == 0) {
		execvp(argv[2], argv + 2);
		fprintf(stderr, "measure: '%s': %s\n", argv[2], strerror(errno));
		_exit(127);
	}
	while (wait4(pid, &status, 0, &ru) < 0) {
		if (errno != EINTR) {
			fprintf(stderr, "measure: wait4: %s\n", strerror(errno));
			return 2;
		}
	}
	(void)clock_gettime(CLOCK_MONOTONIC, &t1);
	rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	fprintf(out, "{\"rc\":%d,\"wall_s\":%.6f,\"cpu_user_s\":%.6f,\"cpu_sys_s\":%.6f,"
	        "\"peak_rss_kb\":%ld}\n", rc,
	        (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9,
	        secs(ru.ru_utime), secs(ru.ru_stime), ru.ru_maxrss);
	if (fclose(out) != 0) {
		fprintf(stderr, "measure: '%s': %s\n", argv[1], strerror(errno));
		return 2;
	}
	return 0;
}
