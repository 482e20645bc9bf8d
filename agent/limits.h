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
/* Probes started in one loop turn. libuv registers new sockets with epoll
 * only when it next polls, after it has computed how long to sleep: a turn
 * that starts 10,000 connects would make every timer of that turn late by
 * the time their registration takes. */
#define VP_START_BATCH          256

/* Protocol replies are read with a hard bound. */
#define VP_REPLY_MAX            (64 * 1024)
#define VP_REPLY_CHUNK          4096
#define VP_SEND_MAX             (64 * 1024)

/* The daemon. History covers at least the last hour of every target. */
#define VP_HISTORY_SECONDS      3600
#define VP_HISTORY_MAX          3601    /* entries per target, at a 1 s interval */
#define VP_STOP_GRACE_MS        4000    /* SIGTERM: exit within 5 s */
#define VP_STATUS_NOTIFY_MS     1000    /* systemd STATUS= at most this often */

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

/* The http(s) probe (probes/http.c, issue 4). The body is read up to
 * VP_REPLY_MAX like every reply; the status line and headers are bounded by
 * libcurl itself (CURL_MAX_HTTP_HEADER, 100 KiB). */
#define VP_HTTP_EXPECT_MAX      16      /* codes and ranges in one expect_status */
#define VP_HTTP_EXPECT_TEXT_MAX 128     /* expect_status as written, bytes */
#define VP_HTTP_SERVER_MAX      64      /* the Server or Via header kept for the detail */
#define VP_HTTP_CA_CACHE_S      300     /* a ca_file is read again after this (CURLOPT_CA_CACHE_TIMEOUT) */

/* TLS (probes/tls.c, issue 4). The handshake is read with its own bound:
 * its bytes go into OpenSSL, not into the reply buffer. Cloud SQL's and
 * Memorystore's chains are a few KiB. */
#define VP_TLS_HANDSHAKE_MAX    (64 * 1024) /* server bytes before the handshake must be done */
#define VP_TLS_CTX_MAX          64      /* SSL_CTX cached, one per ca_file; the least recently used goes */
#define VP_TLS_CA_RECHECK_MS    1000    /* a cached ca_file is stat()ed at most this often, to see a rotated CA */
#define VP_TLS_CA_FILE_MAX      (4 * 1024 * 1024) /* ca_file bytes (the system bundle is ~200 KiB) */
#define VP_TLS_VERSION_MAX      16      /* "TLSv1.3" */
#define VP_TLS_CIPHER_MAX       64      /* "TLS_AES_256_GCM_SHA384"; IANA names are < 60 */
#define VP_TLS_RECORD_MAX       (16 * 1024 + 256) /* one TLS record with its overhead: a flush chunk */

/* Text. */
#define VP_DETAIL_MAX           256
#define VP_HINT_MAX             512
#define VP_ERR_MAX              1024    /* one error message */

/* DNS (probes/dns.c, issue 4). The lookup's own deadline (half of the
 * target's timeout_ms, VP_DNS_BUDGET_PCT) bounds it as a whole; these bound
 * one try, so that a lost UDP datagram is asked again within a 2 s budget
 * instead of after c-ares' 5 s. */
#define VP_DNS_TRY_MS           700     /* first try; c-ares doubles it per round */
#define VP_DNS_TRIES            3       /* rounds over the servers */
#define VP_DNS_SERVER_MAX       64      /* one "[v6]:PORT" server string, bytes */
#define VP_DNS_NOMEM_QUEUE      64      /* callbacks owed after a failed allocation */
/* A name's lookup gets at most this share of the target's timeout_ms; the
 * connect and what follows get the rest, and at least the other half. A slow
 * or dead resolver must not eat the whole budget and turn every probe behind
 * it into a timeout that blames the firewall (agent/runner.c, issue 4). */
#define VP_DNS_BUDGET_PCT       50

/* Collector delivery (agent/spool.c, agent/reporter.c, agent/metadata.c,
 * issue 5). The spool is bounded by collector.spool_max_mb; a segment is an
 * eighth of that, between the two bounds below, so that dropping the oldest
 * segment frees room without throwing away most of the spool. */
#define VP_SPOOL_RECORD_MAX     (16 * 1024)  /* one record's JSON; a record is < 2 KiB */
#define VP_SPOOL_SEGMENT_MIN    (64 * 1024)
#define VP_SPOOL_SEGMENT_MAX    (4 * 1024 * 1024)
#define VP_SPOOL_SEGMENTS_PER   8       /* segments per spool_max_mb */
#define VP_SPOOL_SEGMENTS_MAX   32768   /* segment files tracked; 64 GiB / 4 MiB is 16384 */
#define VP_SPOOL_SYNC_MS        500     /* fdatasync period: a result is on disk within 1 s */
#define VP_SPOOL_RETIRED_MAX    16      /* closed segments waiting for their last fdatasync */
#define VP_SPOOL_STATE_MAX      256     /* the ack cursor file, bytes */
#define VP_REPORT_BATCH_DEFAULT 500     /* results per batch (collector.batch_max) */
#define VP_REPORT_BATCH_MAX     10000
#define VP_REPORT_BATCH_BYTES   (1024 * 1024) /* records read from the spool into one batch */
#define VP_REPORT_FLUSH_MS      1000    /* a batch leaves at least this often */
#define VP_REPORT_TIMEOUT_MS_DEFAULT 10000 /* one POST, connect included (collector.timeout_ms) */
#define VP_REPORT_TIMEOUT_MS_MIN 100
#define VP_REPORT_TIMEOUT_MS_MAX 600000
#define VP_REPORT_CONNECT_MS    5000    /* the connect phase, when the timeout is longer */
#define VP_REPORT_BACKOFF_MIN_MS 1000   /* the first retry; doubles per failure */
#define VP_REPORT_BACKOFF_MAX_MS 60000
#define VP_REPORT_RETRY_AFTER_MAX_S 600 /* a longer Retry-After is cut to this */
#define VP_REPORT_ANSWER_MAX    512     /* response body bytes read; the rest is not */
#define VP_REPORT_STOP_MS       2000    /* SIGTERM: a last batch gets this long */
/* OTLP metrics (agent/otlp_metrics.c): a snapshot every period, not queued. */
#define VP_REPORT_METRICS_MS    60000   /* the period: OpenTelemetry's default export interval */
#define VP_REPORT_METRICS_MIN_MS 1000   /* OTEL_METRIC_EXPORT_INTERVAL shorter: one POST a second is plenty */
#define VP_REPORT_METRICS_MAX_MS 86400000 /* longer than a day: a typo, not a wish for no metrics */
#define VP_REPORT_METRICS_BODY_MAX (64 * 1024 * 1024) /* ~0.7 kB a target: some 90,000 targets */
/* A disk almost full fails some appends and takes others: a spool outage
 * ends after this long without a failed append, so it and its end are
 * logged once (issue 9, tests/faults.py disk). */
#define VP_REPORT_SPOOL_RECOVERED_MS 5000
#define VP_TOKEN_MAX            4096    /* collector.token_file's content, bytes */
#define VP_METADATA_VALUE_MAX   256     /* one metadata answer, bytes */
#define VP_METADATA_TIMEOUT_MS  2000    /* one metadata request */
#define VP_METADATA_DEADLINE_MS 10000   /* all of them, retries included; then report without */
#define VP_METADATA_RETRY_MS    500     /* after a 503 or a failed connect */

/* Listener table (probes/listeners.c, issue 3). */
#define VP_LISTEN_SOCKETS_MAX   65536   /* listening sockets kept; more are dropped and flagged */
#define VP_LISTEN_PORTS_MAX     1024    /* ports asked on one command line */
#define VP_LISTEN_PROC_BYTES_MAX (64 * 1024 * 1024) /* read of one /proc/net/tcp{,6} */
#define VP_LISTEN_PROC_LINE_MAX 512     /* a longer /proc/net/tcp line is skipped */
#define VP_LISTEN_READ_BUF      65536   /* one netlink receive (the kernel sends <= 32 KiB) or /proc read */
#define VP_LISTEN_NL_TIMEOUT_MS 5000    /* a sock_diag dump that stalls this long fails */
#define VP_LISTEN_SCAN_LINKS_MAX 262144 /* /proc/PID/fd links read to find owners */
#define VP_LISTEN_COMM_MAX      64      /* a process name (the kernel's comm is 16) */

/* Remote evidence for a refusal (agent/peer.c, issue 3): the listener table
 * of one port asked of the agent on the target's host. The peer is another
 * host on the network: its answer is read with a hard bound, and the ask
 * spends the refused probe's own time, never more. */
#define VP_PEER_BODY_MAX        (64 * 1024) /* a longer answer is refused, not read; 256 sockets of ~150-200 bytes fit */
#define VP_PEER_SOCKETS_MAX     256     /* sockets of one port in an answer (SO_REUSEPORT groups) */
#define VP_PEER_TIMEOUT_MS      1000    /* the ask's deadline, at most; never past the probe's */
#define VP_PEER_MIN_MS          20      /* with less of the probe's time left, nothing is asked */

/* Beacon (probes/beacon.c, agent/cmd_beacon.c, issue 3). It faces anyone who
 * can reach its port: it reads a small request at most, gives every
 * connection a deadline and holds a fixed number of them. Each held
 * connection costs about 3.5 KiB (its handles, request buffer and answer)
 * and a descriptor; the default cap keeps that under 16 MiB. */
#define VP_BEACON_REQUEST_MAX   2048    /* request line and headers read, bytes; then 431 */
#define VP_BEACON_RESPONSE_MAX  640     /* the whole answer, headers and body */
#define VP_BEACON_TIMEOUT_MS    10000   /* a connection's deadline for its request; then closed */
#define VP_BEACON_CONN_DEFAULT  4096    /* connections held at once; more are accepted and closed */
#define VP_BEACON_CONN_MAX      65536   /* beacon --max-connections */
#define VP_BEACON_REJECT_SLOTS  64      /* over-cap connections closing at once; then accept() waits */
#define VP_BEACON_ARRIVALS_MAX  1024    /* arrivals kept per beacon for the status page */
#define VP_BEACON_BACKLOG       4096    /* listen() backlog (the kernel caps it at somaxconn) */
#define VP_BEACON_LOG_PER_S     20      /* arrivals logged per second by `run`; the rest counted */
#define VP_BEACON_METHOD_MAX    32      /* an HTTP method longer than this is not HTTP */

/* Status endpoints (agent/status*.c, issue 6). A flood of idle or slow
 * clients must not starve the page nor the probes: connections are capped
 * in all and per address, idle ones are closed, each has a fixed memory
 * pool for its request, and every answer is built in a bounded buffer.
 * Each connection holds a descriptor the probes then lack; the cap stays
 * far below the LimitNOFILE the unit gives for the probes in flight. */
#define VP_STATUS_CONN_MAX      1024    /* connections at once, all clients */
#define VP_STATUS_CONN_PER_IP   64      /* connections at once from one address */
#define VP_STATUS_IDLE_S        15      /* an idle connection is closed after this */
#define VP_STATUS_CONN_MEMORY   (32 * 1024) /* per connection: request line and headers */
#define VP_STATUS_BODY_MAX      (16 * 1024 * 1024) /* one answer; the page then omits rows */
#define VP_STATUS_METRICS_MAX   (64 * 1024 * 1024) /* /metrics: ~35,000 targets; past it, 500 */
#define VP_STATUS_INFLIGHT_MAX  (64 * 1024 * 1024) /* answers queued to slow readers; then 503 */
#define VP_STATUS_CACHE_MS      1000    /* '/', the JSON and /metrics are built at most this often */
#define VP_STATUS_SNDBUF        (64 * 1024) /* a client socket's send buffer: bytes one turn writes to it */
#define VP_STATUS_ROW_RESERVE   (64 * 1024) /* room kept for the page's end */
#define VP_STATUS_TOKEN_MAX     1024    /* status_token_file's content, bytes */
#define VP_STATUS_AUTH_MAX      4096    /* an Authorization header longer than this is refused */
#define VP_STATUS_STALL_MS      5000    /* /healthz: 503 once the loop stalled this long */
#define VP_STATUS_HEARTBEAT_MS  1000
#define VP_STATUS_REFRESH_S     10      /* the page refreshes itself this often */
#define VP_STATUS_LISTEN_CACHE_MS 2000  /* /api/v1/listeners reads the table at most this often */
#define VP_STATUS_STEPS_MAX     3       /* next-step commands shown per target */
#define VP_STATUS_STEP_MAX      1024    /* one command, bytes: a host name is up to 255 */
#define VP_SPARK_BUCKETS        60      /* sparkline: one bucket per minute of the last hour */

/* vpcprobe diagnose (agent/gcloud*.c, agent/firewall.c, agent/diagnose*.c,
 * issue 7). The exports are what gcloud prints with --format=json; each is
 * read whole, so each is bounded, and so is every list inside. The GCE
 * quotas are far below these: 64 network tags per instance, 5,000 source
 * ranges per firewall rule, 8 NICs per small VM. */
#define VP_GCLOUD_FILE_MAX      (64 * 1024 * 1024) /* one export file, bytes */
#define VP_GCLOUD_LINE_MAX      (64 * 1024) /* one line of check --json output */
#define VP_GCLOUD_STR_MAX       512     /* a URL, path or email read from an export */
#define VP_GCLOUD_NAME_MAX      64      /* a GCE name or network tag: 1..63 characters (RFC 1035) */
#define VP_GCLOUD_RULES_MAX     20000   /* firewall rules in one list */
#define VP_GCLOUD_LIST_MAX      5000    /* items of one list in a rule (sourceRanges, ports ...) */
#define VP_GCLOUD_TAGS_MAX      64      /* network tags of an instance or a Direct VPC interface */
#define VP_GCLOUD_NICS_MAX      16      /* network interfaces of an instance */
#define VP_GCLOUD_SAS_MAX       16      /* service accounts of an instance */
#define VP_GCLOUD_IPS_MAX       16      /* ipAddresses of a Cloud SQL instance */
#define VP_GCLOUD_PEERINGS_MAX  256     /* private connections in one vpc-peerings list */
#define VP_GCLOUD_RANGES_MAX    16      /* reservedPeeringRanges kept per connection */
#define VP_GCLOUD_LOG_MAX       20000   /* log entries read; the rest is counted, not read */
#define VP_GCLOUD_RESULTS_MAX   256     /* records of the diagnosed target kept from check --json output */
#define VP_DIAG_TEXT_MAX        2048    /* the evidence, or the fix, of one step */
#define VP_DIAG_RULES_SHOWN     8       /* rules named in one step's evidence; then "and N more" */

#endif
