/* Every bound vpcprobe puts on what users, targets or peers can grow.
 * Kept in one place so that a reader can see all of them at once. */
#ifndef VP_LIMITS_H
#define VP_LIMITS_H

/* Configuration. */
#define VP_CONFIG_MAX_BYTES     (4 * 1024 * 1024) /* a config file larger than this is refused */
#define VP_CONFIG_MAX_TARGETS   100000
#define VP_CONFIG_MAX_ERRORS    16      /* validate reports at most this many */
#define VP_CONFIG_MAX_LISTENERS 1024
#define VP_CONFIG_MAX_BEACONS   64
#define VP_CONFIG_MAX_CIDRS     1024    /* per beacon's expect_from */
#define VP_CONFIG_MAX_DNS_SERVERS 8
#define VP_NAME_MAX             128     /* target and agent names, bytes */
#define VP_URL_MAX              2048
#define VP_HOST_MAX             256     /* RFC 1035 name: 253 + brackets + NUL */
#define VP_PATH_MAX             1024

/* Timing. */
#define VP_TIMEOUT_MS_MIN       1
#define VP_TIMEOUT_MS_MAX       600000
#define VP_TIMEOUT_MS_DEFAULT   2000
#define VP_INTERVAL_S_MIN       1
#define VP_INTERVAL_S_MAX       86400
#define VP_INTERVAL_S_DEFAULT   10

/* Probe engine. The default cap lets 10,000 probes be in flight at once; the
 * engine lowers it to what RLIMIT_NOFILE leaves after VP_FD_RESERVE. */
#define VP_IN_FLIGHT_DEFAULT    16384
#define VP_IN_FLIGHT_MAX        1000000
#define VP_FD_RESERVE           64

/* Protocol replies are read with a hard bound. */
#define VP_REPLY_MAX            (64 * 1024)
#define VP_REPLY_CHUNK          4096
#define VP_SEND_MAX             (64 * 1024)

/* The daemon. History covers at least the last hour of every target. */
#define VP_HISTORY_SECONDS      3600
#define VP_HISTORY_MAX          3601    /* entries per target, at a 1 s interval */
#define VP_STOP_GRACE_MS        4000    /* SIGTERM: exit within 5 s */

/* Protocol probes (probes/postgres.c, probes/redis.c, issue 4). */
#define VP_PASSWORD_MAX         1024    /* a password_file's content, bytes (Memorystore's AUTH string is 36) */
#define VP_PG_NAME_MAX          63      /* user and database: NAMEDATALEN - 1; the server cuts longer ones */
#define VP_REDIS_USER_MAX       128     /* an ACL user name for AUTH */
#define VP_PG_MSG_MAX           (VP_REPLY_MAX - 1) /* a message with its type byte fits the read buffer */
#define VP_PG_FIELD_MAX         200     /* an ErrorResponse field kept for the detail, bytes */
#define VP_PG_MECHS_MAX         4       /* SASL mechanisms looked at in one request */
#define VP_SCRAM_ITER_MAX       100000  /* PBKDF2 runs on the loop: ~0.1 s at most; PostgreSQL uses 4096 */
#define VP_SCRAM_SALT_MAX       128     /* decoded salt, bytes (PostgreSQL sends 16) */
#define VP_SCRAM_MSG_MAX        1024    /* one SCRAM message, either way */
#define VP_RESP_LINE_MAX        4096    /* a RESP status or error line without its CRLF */
#define VP_RESP_BULK_MAX        (VP_REPLY_MAX - 64) /* a bulk string that can fit the read buffer */
#define VP_PREVIEW_BYTES        48      /* bytes of an unexpected reply shown (escaped) in a detail */
#define VP_PROTO_REASON_MAX     32      /* a reason made from a server's word, bytes */

/* Text. */
#define VP_DETAIL_MAX           256
#define VP_HINT_MAX             512
#define VP_ERR_MAX              1024    /* one error message */

/* DNS (probes/dns.c, issue 4). The lookup's own deadline (the target's
 * timeout) bounds it as a whole; these bound one try, so that a lost UDP
 * datagram is asked again within a 2 s budget instead of after c-ares' 5 s. */
#define VP_DNS_TRY_MS           700     /* first try; c-ares doubles it per round */
#define VP_DNS_TRIES            3       /* rounds over the servers */
#define VP_DNS_SERVER_MAX       64      /* one "[v6]:PORT" server string, bytes */
#define VP_DNS_NOMEM_QUEUE      64      /* callbacks owed after a failed allocation */

/* Listener table (probes/listeners.c, issue 3). */
#define VP_LISTEN_SOCKETS_MAX   65536   /* listening sockets kept; more are dropped and flagged */
#define VP_LISTEN_PORTS_MAX     1024    /* ports asked on one command line */
#define VP_LISTEN_PROC_BYTES_MAX (64 * 1024 * 1024) /* read of one /proc/net/tcp{,6} */
#define VP_LISTEN_PROC_LINE_MAX 512     /* a longer /proc/net/tcp line is skipped */
#define VP_LISTEN_READ_BUF      65536   /* one netlink receive (the kernel sends <= 32 KiB) or /proc read */
#define VP_LISTEN_NL_TIMEOUT_MS 5000    /* a sock_diag dump that stalls this long fails */
#define VP_LISTEN_SCAN_LINKS_MAX 262144 /* /proc/PID/fd links read to find owners */
#define VP_LISTEN_COMM_MAX      64      /* a process name (the kernel's comm is 16) */

#endif
