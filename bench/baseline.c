/* epoll-baseline: the physical-limit proxy that vpcprobe's engine is measured
 * against. Plain libc: non-blocking connect(), one epoll, one timerfd.
 *
 *   epoll-baseline --addr ADDR --ports LO-HI --count N --in-flight K
 *                  --timeout-ms T [--json] [--recverr]
 *
 * --recverr does the kernel work vpcprobe does for its ICMP evidence, so the
 * benchmark can tell how much of the gap that evidence is: IP_RECVERR
 * (IPV6_RECVERR) set on every socket before connect(), and one recvmsg()
 * from the error queue for every probe whose connect failed, as
 * probes/tcp.c does: two syscalls more per refused probe, one per other
 * probe. The report adds how many failures found an ICMP error queued (a
 * REJECT rule's; a RST queues nothing).
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
#include <linux/errqueue.h>
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

#include "common.h"

#define NONE      UINT32_MAX  /* list end / the timerfd's epoll tag */
#define MAXEVENTS 1024


struct slot {
	int fd;
	uint32_t prev, next;   /* deadline FIFO links, NONE at the ends */
	uint64_t deadline_ns;
};

struct bench {
	const struct bench_opts *o;
	int ep, tfd;
	struct slot *slots;    /* owned, o->in_flight of them */
	uint32_t *free_stack;  /* owned: indices of unused slots */
	uint32_t nfree;
	uint32_t head, tail;   /* deadline FIFO */
	uint64_t armed_ns;     /* the timerfd's expiry, 0 when disarmed */
	uint64_t started, done;
	uint16_t next_port;
	uint64_t ok, refused, timeout, other;
	uint64_t icmp;         /* --recverr: failures with an ICMP error queued */
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

/* --recverr: reads the one message the error queue may hold for a failed
 * connect and counts it when an ICMP error put it there. An empty queue
 * (EAGAIN) is the common case, a RST, and costs the syscall all the same. */
static void read_errqueue(struct bench *b, int fd)
{
	char data[64];
	char control[256];
	struct sockaddr_storage from;
	struct iovec iov = { .iov_base = data, .iov_len = sizeof(data) };
	struct msghdr msg = {
		.msg_name = &from, .msg_namelen = sizeof(from), .msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = control, .msg_controllen = sizeof(control),
	};

	if (recvmsg(fd, &msg, MSG_ERRQUEUE | MSG_DONTWAIT) < 0)
		return;
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(&msg); cm != NULL; cm = CMSG_NXTHDR(&msg, cm)) {
		const struct sock_extended_err *ee;

		if (!(cm->cmsg_level == SOL_IP && cm->cmsg_type == IP_RECVERR) &&
		    !(cm->cmsg_level == SOL_IPV6 && cm->cmsg_type == IPV6_RECVERR))
			continue;
		ee = (const struct sock_extended_err *)CMSG_DATA(cm);
		if (ee->ee_origin == SO_EE_ORIGIN_ICMP || ee->ee_origin == SO_EE_ORIGIN_ICMP6)
			b->icmp++;
		return;
	}
}

static int set_recverr(int fd, int family)
{
	int one = 1;

	if (family == AF_INET6)
		return setsockopt(fd, SOL_IPV6, IPV6_RECVERR, &one, sizeof(one));
	return setsockopt(fd, SOL_IP, IP_RECVERR, &one, sizeof(one));
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
		if (err != 0 && b->o->recverr)
			read_errqueue(b, s->fd);
		count_err(b, err);
	}
	fifo_remove(b, i);
	(void)close(s->fd); /* closing also removes it from the epoll set */
	s->fd = -1;
	b->free_stack[b->nfree++] = i;
}

static void probe_start(struct bench *b)
{
	const struct bench_opts *o = b->o;
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
	if (o->recverr && set_recverr(fd, o->addr.ss_family) != 0) {
		count_err(b, errno);
		(void)close(fd);
		return;
	}
	if (connect(fd, (struct sockaddr *)&sa, o->addrlen) == 0) {
		count_err(b, 0);
		(void)close(fd);
		return;
	}
	if (errno != EINPROGRESS) {
		int err = errno;

		/* Loopback may answer the SYN before connect() returns. libuv hands
		 * that ECONNREFUSED to the connect callback, where vpcprobe reads
		 * the error queue as for any failed connect; other errors here
		 * fail its setup, which does not. */
		if (err == ECONNREFUSED && o->recverr)
			read_errqueue(b, fd);
		count_err(b, err);
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
	const struct bench_opts *o = b->o;

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

static void report(struct bench *b)
{
	struct bench_counts c = {
		.done = b->done, .ok = b->ok, .refused = b->refused, .timeout = b->timeout,
		.other = b->other, .icmp = b->icmp, .late_ns = b->late_ns,
		.t_first_ns = b->t_first, .t_last_ns = b->t_last,
	};

	if (b->first_other_err != 0)
		fprintf(stderr, "epoll-baseline: %" PRIu64 " probes ended otherwise, the first with: %s\n",
		        b->other, strerror(b->first_other_err));
	bench_report("epoll-baseline", b->o, &c);
}

int main(int argc, char **argv)
{
	struct bench_opts o;
	struct bench b = { 0 };

	bench_parse_args("epoll-baseline", argc, argv, &o);
	bench_raise_nofile("epoll-baseline");
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
