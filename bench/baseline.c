/* epoll-baseline: the physical-limit proxy that vpcprobe's engine is measured
 * against. Plain libc: non-blocking connect(), one epoll, one timerfd.
 *
 *   epoll-baseline --addr ADDR --ports LO-HI --count N --in-flight K
 *                  --timeout-ms T [--json]
 *
 * Every probe has the same timeout, so the probes in flight, kept in the
 * order they started, are also in deadline order: a doubly linked FIFO gives
 * the next deadline in O(1) and drops a probe that finished early in O(1).
 * The timerfd is armed (absolute, CLOCK_MONOTONIC) at the head's deadline and
 * re-armed only when it fires or when nothing is armed, so a head that
 * finished early costs one spurious wakeup, not one timerfd_settime() per
 * probe. A probe ends when the socket reports writable/error (SO_ERROR says
 * which) or when its deadline has passed, whichever the loop sees first. */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define NONE      UINT32_MAX  /* list end / the timerfd's epoll tag */
#define MAXEVENTS 1024

struct opts {
	struct sockaddr_storage addr;
	socklen_t addrlen;
	uint16_t port_lo, port_hi;
	uint64_t count;
	uint32_t in_flight;
	uint32_t timeout_ms;
	bool json;
};

struct slot {
	int fd;
	uint32_t prev, next;   /* deadline FIFO links, NONE at the ends */
	uint64_t deadline_ns;
};

struct bench {
	const struct opts *o;
	int ep, tfd;
	struct slot *slots;    /* owned, o->in_flight of them */
	uint32_t *free_stack;  /* owned: indices of unused slots */
	uint32_t nfree;
	uint32_t head, tail;   /* deadline FIFO */
	uint64_t armed_ns;     /* the timerfd's expiry, 0 when disarmed */
	uint64_t started, done;
	uint16_t next_port;
	uint64_t ok, refused, timeout, other;
	int64_t *late_ns;      /* owned, 'count' entries, one per timeout */
	uint64_t t_first, t_last;
	int first_other_err;   /* reported on stderr to explain "other" */
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_MONOTONIC, &ts); /* cannot fail for this clock */
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void usage(void)
{
	fprintf(stderr, "usage: epoll-baseline --addr ADDR --ports LO-HI --count N "
	        "--in-flight K --timeout-ms T [--json]\n");
	exit(2);
}

static uint64_t parse_u64(const char *name, const char *s, uint64_t min, uint64_t max)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < min || v > max) {
		fprintf(stderr, "epoll-baseline: %s: '%s' not in %" PRIu64 "..%" PRIu64 "\n",
		        name, s, min, max);
		exit(2);
	}
	return v;
}

static void parse_ports(const char *s, struct opts *o)
{
	char buf[32];
	char *dash;

	if (strlen(s) >= sizeof(buf))
		usage();
	memcpy(buf, s, strlen(s) + 1);
	dash = strchr(buf, '-');
	if (dash != NULL)
		*dash = '\0';
	o->port_lo = (uint16_t)parse_u64("--ports", buf, 1, 65535);
	o->port_hi = dash != NULL ? (uint16_t)parse_u64("--ports", dash + 1, 1, 65535) : o->port_lo;
	if (o->port_hi < o->port_lo) {
		fprintf(stderr, "epoll-baseline: --ports: '%s': HI below LO\n", s);
		exit(2);
	}
}

static void parse_addr(const char *s, struct opts *o)
{
	struct sockaddr_in *in4 = (struct sockaddr_in *)&o->addr;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&o->addr;

	memset(&o->addr, 0, sizeof(o->addr));
	if (inet_pton(AF_INET, s, &in4->sin_addr) == 1) {
		in4->sin_family = AF_INET;
		o->addrlen = sizeof(*in4);
	} else if (inet_pton(AF_INET6, s, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		o->addrlen = sizeof(*in6);
	} else {
		fprintf(stderr, "epoll-baseline: --addr: '%s' is not an IPv4 or IPv6 address\n", s);
		exit(2);
	}
}

static void parse_args(int argc, char **argv, struct opts *o)
{
	bool have_addr = false, have_ports = false;

	memset(o, 0, sizeof(*o));
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (strcmp(a, "--json") == 0) {
			o->json = true;
			continue;
		}
		if (i + 1 >= argc)
			usage();
		if (strcmp(a, "--addr") == 0) {
			parse_addr(argv[++i], o);
			have_addr = true;
		} else if (strcmp(a, "--ports") == 0) {
			parse_ports(argv[++i], o);
			have_ports = true;
		} else if (strcmp(a, "--count") == 0) {
			o->count = parse_u64(a, argv[++i], 1, 100000000);
		} else if (strcmp(a, "--in-flight") == 0) {
			o->in_flight = (uint32_t)parse_u64(a, argv[++i], 1, 1000000);
		} else if (strcmp(a, "--timeout-ms") == 0) {
			o->timeout_ms = (uint32_t)parse_u64(a, argv[++i], 1, 600000);
		} else {
			usage();
		}
	}
	if (!have_addr || !have_ports || o->count == 0 || o->in_flight == 0 || o->timeout_ms == 0)
		usage();
}

/* Up to the hard limit: 16,000 sockets in flight need more than the usual
 * soft limit of 1,024. Failure is not fatal; socket() will say EMFILE. */
static void raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return;
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
		perror("epoll-baseline: setrlimit(RLIMIT_NOFILE), ignoring");
}

static void fifo_append(struct bench *b, uint32_t i)
{
	b->slots[i].prev = b->tail;
	b->slots[i].next = NONE;
	if (b->tail != NONE)
		b->slots[b->tail].next = i;
	else
		b->head = i;
	b->tail = i;
}

static void fifo_remove(struct bench *b, uint32_t i)
{
	struct slot *s = &b->slots[i];

	if (s->prev != NONE)
		b->slots[s->prev].next = s->next;
	else
		b->head = s->next;
	if (s->next != NONE)
		b->slots[s->next].prev = s->prev;
	else
		b->tail = s->prev;
}

static void count_err(struct bench *b, int err)
{
	if (err == 0) {
		b->ok++;
	} else if (err == ECONNREFUSED) {
		b->refused++;
	} else {
		b->other++;
		if (b->first_other_err == 0)
			b->first_other_err = err;
	}
	b->done++;
	b->t_last = now_ns();
}

/* Ends probe 'i' with the socket's verdict or, when 'expired' is set, as a
 * timeout that was due at its deadline. */
static void slot_end(struct bench *b, uint32_t i, bool expired)
{
	struct slot *s = &b->slots[i];

	if (expired) {
		uint64_t t = now_ns();

		b->late_ns[b->timeout++] = (int64_t)(t - s->deadline_ns);
		b->done++;
		b->t_last = t;
	} else {
		int err = 0;
		socklen_t len = sizeof(err);

		if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
			err = errno;
		count_err(b, err);
	}
	fifo_remove(b, i);
	(void)close(s->fd); /* closing also removes it from the epoll set */
	s->fd = -1;
	b->free_stack[b->nfree++] = i;
}

static void probe_start(struct bench *b)
{
	const struct opts *o = b->o;
	struct sockaddr_storage sa = o->addr;
	uint32_t i;
	uint64_t t;
	int fd;

	if (o->addr.ss_family == AF_INET)
		((struct sockaddr_in *)&sa)->sin_port = htons(b->next_port);
	else
		((struct sockaddr_in6 *)&sa)->sin6_port = htons(b->next_port);
	b->next_port = b->next_port == o->port_hi ? o->port_lo : (uint16_t)(b->next_port + 1);
	b->started++;

	/* The deadline counts from before socket(), as vpcprobe's does. */
	t = now_ns();
	if (b->t_first == 0)
		b->t_first = t;
	fd = socket(o->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		count_err(b, errno);
		return;
	}
	if (connect(fd, (struct sockaddr *)&sa, o->addrlen) == 0) {
		count_err(b, 0);
		(void)close(fd);
		return;
	}
	if (errno != EINPROGRESS) {
		/* Loopback may answer the SYN before connect() returns. */
		count_err(b, errno);
		(void)close(fd);
		return;
	}

	i = b->free_stack[--b->nfree];
	b->slots[i].fd = fd;
	b->slots[i].deadline_ns = t + (uint64_t)o->timeout_ms * 1000000u;
	fifo_append(b, i);
	struct epoll_event ev = { .events = EPOLLOUT, .data.u32 = i };
	if (epoll_ctl(b->ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
		perror("epoll-baseline: epoll_ctl(ADD)");
		exit(1);
	}
}

static void arm_timer(struct bench *b)
{
	uint64_t d;
	struct itimerspec its = { 0 };

	if (b->head == NONE)
		return;
	d = b->slots[b->head].deadline_ns;
	/* An earlier expiry is already armed: it fires, finds nothing due and
	 * re-arms. Deadlines only grow, so a later one is never armed. */
	if (b->armed_ns != 0 && b->armed_ns <= d)
		return;
	its.it_value.tv_sec = (time_t)(d / 1000000000u);
	its.it_value.tv_nsec = (long)(d % 1000000000u);
	if (timerfd_settime(b->tfd, TFD_TIMER_ABSTIME, &its, NULL) != 0) {
		perror("epoll-baseline: timerfd_settime");
		exit(1);
	}
	b->armed_ns = d;
}

static void expire(struct bench *b)
{
	uint64_t t = now_ns();

	while (b->head != NONE && b->slots[b->head].deadline_ns <= t)
		slot_end(b, b->head, true);
}

static void run(struct bench *b)
{
	static struct epoll_event evs[MAXEVENTS];
	const struct opts *o = b->o;

	while (b->done < o->count) {
		while (b->nfree > 0 && b->started < o->count)
			probe_start(b);
		if (b->head == NONE)
			continue; /* everything started so far finished at once */
		arm_timer(b);

		int n = epoll_wait(b->ep, evs, MAXEVENTS, -1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			perror("epoll-baseline: epoll_wait");
			exit(1);
		}
		for (int k = 0; k < n; k++) {
			uint32_t i = evs[k].data.u32;

			if (i == NONE) {
				uint64_t ticks;

				/* EAGAIN when a re-arm already reset it; either way it is disarmed. */
				(void)!read(b->tfd, &ticks, sizeof(ticks));
				b->armed_ns = 0;
			} else if (b->slots[i].fd >= 0) {
				slot_end(b, i, false);
			}
		}
		expire(b);
	}
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

/* Nearest rank on a sorted array. */
static double pct_ms(const int64_t *v, uint64_t n, double p)
{
	uint64_t r = (uint64_t)(p / 100.0 * (double)n + 0.999999999);

	if (r < 1)
		r = 1;
	if (r > n)
		r = n;
	return (double)v[r - 1] / 1e6;
}

static void report(const struct bench *b)
{
	const struct opts *o = b->o;
	struct rusage ru;
	double wall, user, sys;
	char late[256];

	(void)getrusage(RUSAGE_SELF, &ru); /* cannot fail for RUSAGE_SELF */
	wall = (double)(b->t_last - b->t_first) / 1e9;
	user = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6;
	sys = (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
	if (b->timeout > 0) {
		qsort(b->late_ns, b->timeout, sizeof(*b->late_ns), cmp_i64);
		snprintf(late, sizeof(late), "{\"p50\":%.3f,\"p99\":%.3f,\"max\":%.3f,\"min\":%.3f}",
		         pct_ms(b->late_ns, b->timeout, 50), pct_ms(b->late_ns, b->timeout, 99),
		         (double)b->late_ns[b->timeout - 1] / 1e6, (double)b->late_ns[0] / 1e6);
	} else {
		snprintf(late, sizeof(late), "null");
	}
	if (b->first_other_err != 0)
		fprintf(stderr, "epoll-baseline: %" PRIu64 " probes ended otherwise, the first with: %s\n",
		        b->other, strerror(b->first_other_err));
	printf(o->json ? "{\"program\":\"epoll-baseline\",\"probes\":%" PRIu64 ",\"wall_s\":%.6f,"
	                 "\"probes_per_s\":%.1f,\"cpu_user_s\":%.3f,\"cpu_sys_s\":%.3f,"
	                 "\"cpu_s_per_1000\":%.5f,\"peak_rss_kb\":%ld,\"refused\":%" PRIu64 ","
	                 "\"ok\":%" PRIu64 ",\"timeout\":%" PRIu64 ",\"other\":%" PRIu64 ","
	                 "\"lateness_ms\":%s}\n"
	               : "program epoll-baseline\nprobes %" PRIu64 "\nwall_s %.6f\n"
	                 "probes_per_s %.1f\ncpu_user_s %.3f\ncpu_sys_s %.3f\n"
	                 "cpu_s_per_1000 %.5f\npeak_rss_kb %ld\nrefused %" PRIu64 "\n"
	                 "ok %" PRIu64 "\ntimeout %" PRIu64 "\nother %" PRIu64 "\n"
	                 "lateness_ms %s\n",
	       b->done, wall, wall > 0 ? (double)b->done / wall : 0.0, user, sys,
	       (user + sys) * 1000.0 / (double)b->done, ru.ru_maxrss, b->refused, b->ok,
	       b->timeout, b->other, late);
}

int main(int argc, char **argv)
{
	struct opts o;
	struct bench b = { 0 };

	parse_args(argc, argv, &o);
	raise_nofile();
	b.o = &o;
	b.head = b.tail = NONE;
	b.next_port = o.port_lo;
	b.slots = calloc(o.in_flight, sizeof(*b.slots));
	b.free_stack = calloc(o.in_flight, sizeof(*b.free_stack));
	/* One entry per possible timeout; pages never written are never resident. */
	b.late_ns = malloc(o.count * sizeof(*b.late_ns));
	if (b.slots == NULL || b.free_stack == NULL || b.late_ns == NULL) {
		fprintf(stderr, "epoll-baseline: out of memory\n");
		return 1;
	}
	for (uint32_t i = 0; i < o.in_flight; i++) {
		b.slots[i].fd = -1;
		b.free_stack[b.nfree++] = o.in_flight - 1 - i;
	}
	b.ep = epoll_create1(EPOLL_CLOEXEC);
	b.tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (b.ep < 0 || b.tfd < 0) {
		perror("epoll-baseline: epoll_create1/timerfd_create");
		return 1;
	}
	struct epoll_event ev = { .events = EPOLLIN, .data.u32 = NONE };
	if (epoll_ctl(b.ep, EPOLL_CTL_ADD, b.tfd, &ev) != 0) {
		perror("epoll-baseline: epoll_ctl(timerfd)");
		return 1;
	}

	run(&b);
	report(&b);

	(void)close(b.tfd);
	(void)close(b.ep);
	free(b.late_ns);
	free(b.free_stack);
	free(b.slots);
	return 0;
}
