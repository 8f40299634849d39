/* kangyi-load: the unary load of `make bench`, in C on nghttp2.
 *
 * The Swift generator it replaced (`kangyi bench load`, since removed) spent 0.24-0.56 ms of CPU a call:
 * as much as a third of what it measured, on the same two cores. This one, over one plaintext HTTP/2
 * connection as the bench runs, either keeps `--concurrency` calls in flight (closed loop: each sent
 * when the last is answered) or sends `--rate` calls a second on schedule whatever the answers (open
 * loop: each call's latency runs from when it should have been sent, so a generator or connection that
 * falls behind shows as latency).
 * It writes the JSON scripts/bench/report.py reads.
 *
 * Each SubmitHelpRequest is new, as the Swift generator's were: its own request id ("bench-RUN-NUMBER")
 * and phone (1, the block's three digits, the worker's two, the call's five; open loop: worker 0, the
 * call's number), so no call is a replay and none a repeat (open-loop runs up to 100,000 calls). The request is encoded here by hand — five fields of one message; the server's
 * answers prove the encoding (a run whose calls fail fails the bench).
 *
 * The latencies of calls sent in the measured window (after a 2 s warm-up) and answered before it ends
 * are kept and sorted for percentiles; every call answered counts in "calls" (what the servers' CPU
 * counters cover). */
#define _GNU_SOURCE /* ppoll: open-loop sends are due every fraction of a millisecond */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <nghttp2/nghttp2.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "kangyi_net.h"

#define WARM_UP_S 2
#define MAX_CONCURRENCY 1024
#define MAX_OPEN_IN_FLIGHT 32768

typedef struct {
    const char *host, *port, *rpc, *token, *json;
    int concurrency, seconds, deadline_ms, phone_block;
    double rate;    /* calls a second, open loop; 0: closed loop */
    char run[17];
} options;

/* One call in flight: a closed-loop worker's, or an open-loop slot's. */
typedef struct {
    int32_t stream_id;
    int worker;
    long sequence;
    double sent;        /* seconds, monotonic: when it was sent, or (open loop) when it should have been */
    int grpc_status;    /* -1 until the trailers say */
    int http_status;
    uint8_t body[512];  /* the gRPC frame: 5-byte prefix, then the message */
    size_t body_length, body_sent;
} call;

typedef struct {
    double *values;
    size_t count, capacity;
} samples;

typedef struct {
    const options *options;
    int submit;          /* SubmitHelpRequest, else the no-op */
    /* Every call's request headers, built once: only the body differs from call to call. */
    char authority[300], bearer[600], timeout[32];
    nghttp2_nv headers[9];
    size_t header_count;
    int fd;
    nghttp2_session *session;
    call calls[MAX_OPEN_IN_FLIGHT];
    int free_slots[MAX_OPEN_IN_FLIGHT], free_count;  /* open loop: slots not in flight */
    long late;           /* open loop: calls not sent because MAX_OPEN_IN_FLIGHT were in flight */
    double window_start, window_end;
    samples ok, not_ok;
    long codes[18];      /* counted calls by grpc-status 0-16, and 17: no status (transport) */
    long done;
    int in_flight;
    int broken;
} load;

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void keep(samples *s, double value) {
    if (s->count == s->capacity) {
        size_t capacity = s->capacity ? s->capacity * 2 : 65536;
        double *values = realloc(s->values, capacity * sizeof *values);
        if (!values) return;
        s->values = values;
        s->capacity = capacity;
    }
    s->values[s->count++] = value;
}

static int by_value(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The value at `percentile` of sorted samples, in milliseconds (nearest rank). */
static double at(const samples *s, double percentile) {
    if (s->count == 0) return 0;
    size_t rank = (size_t)(percentile / 100 * (double)s->count + 0.999999);
    if (rank < 1) rank = 1;
    if (rank > s->count) rank = s->count;
    return s->values[rank - 1] * 1000;
}

/* --- the request --- */

static size_t put_varint(uint8_t *out, uint64_t value) {
    size_t n = 0;
    while (value >= 0x80) {
        out[n++] = (uint8_t)(value | 0x80);
        value >>= 7;
    }
    out[n++] = (uint8_t)value;
    return n;
}

static size_t put_string(uint8_t *out, unsigned field, const char *text) {
    size_t length = strlen(text), n = put_varint(out, field << 3 | 2);
    n += put_varint(out + n, length);
    memcpy(out + n, text, length);
    return n + length;
}

/* Fills the call's body: a new help request, or an empty message for the no-op. */
static void encode(load *l, call *c) {
    uint8_t *message = c->body + 5;
    size_t length = 0;
    if (l->submit) {
        const options *o = l->options;
        long number = (long)c->worker * 10000000L + c->sequence;
        char request_id[64], phone[16], description[160], contact[64];
        snprintf(request_id, sizeof request_id, "bench-%s-%ld", o->run, number);
        snprintf(phone, sizeof phone, "1%d%02d%02d%05ld", 3 + o->phone_block % 7, o->phone_block / 7, c->worker % 100,
                 c->sequence % 100000);
        snprintf(description, sizeof description, "压测请求 %08lx-%04lx-%04lx-%04lx-%012lx %lu：需要生活物资",
                 random() & 0xffffffffL, random() & 0xffffL, random() & 0xffffL, random() & 0xffffL,
                 ((unsigned long)random() << 16 ^ (unsigned long)random()) & 0xffffffffffffUL,
                 (unsigned long)random() << 31 ^ (unsigned long)random());
        size_t contact_length = put_string((uint8_t *)contact, 1, phone);
        length += put_string(message + length, 1, request_id);
        length += put_string(message + length, 2, "food_supply");
        length += put_string(message + length, 3, "410102");
        length += put_varint(message + length, 4 << 3 | 2);
        length += put_varint(message + length, contact_length);
        memcpy(message + length, contact, contact_length);
        length += contact_length;
        length += put_string(message + length, 5, description);
        length += put_varint(message + length, 8 << 3 | 0);
        length += put_varint(message + length, 2); /* URGENCY_URGENT */
    }
    c->body[0] = 0;
    for (int i = 1; i < 5; i++) c->body[i] = (uint8_t)(length >> (8 * (4 - i)));
    c->body_length = 5 + length;
    c->body_sent = 0;
}

/* --- nghttp2 --- */

static call *call_of(load *l, int32_t stream_id) {
    call *c = nghttp2_session_get_stream_user_data(l->session, stream_id);
    return c;
}

static ssize_t send_callback(nghttp2_session *session, const uint8_t *data, size_t length, int flags, void *user) {
    (void)session; (void)flags;
    load *l = user;
    ssize_t sent = send(l->fd, data, length, MSG_NOSIGNAL);
    if (sent < 0) return errno == EAGAIN || errno == EWOULDBLOCK ? NGHTTP2_ERR_WOULDBLOCK : NGHTTP2_ERR_CALLBACK_FAILURE;
    return sent;
}

static ssize_t read_callback(nghttp2_session *session, int32_t stream_id, uint8_t *buffer, size_t length,
                             uint32_t *flags, nghttp2_data_source *source, void *user) {
    (void)session; (void)stream_id; (void)user;
    call *c = source->ptr;
    size_t chunk = c->body_length - c->body_sent < length ? c->body_length - c->body_sent : length;
    memcpy(buffer, c->body + c->body_sent, chunk);
    c->body_sent += chunk;
    if (c->body_sent == c->body_length) *flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)chunk;
}

static int on_header(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name, size_t name_length,
                     const uint8_t *value, size_t value_length, uint8_t flags, void *user) {
    (void)session; (void)flags;
    call *c = call_of(user, frame->hd.stream_id);
    if (!c) return 0;
    char text[16] = {0};
    memcpy(text, value, value_length < 15 ? value_length : 15);
    if (name_length == 11 && memcmp(name, "grpc-status", 11) == 0) c->grpc_status = atoi(text);
    else if (name_length == 7 && memcmp(name, ":status", 7) == 0) c->http_status = atoi(text);
    return 0;
}

static int on_data(nghttp2_session *session, uint8_t flags, int32_t stream_id, const uint8_t *data, size_t length, void *user) {
    (void)session; (void)flags; (void)stream_id; (void)data; (void)length; (void)user;
    return 0; /* the answer's content is not needed: its status is in the trailers */
}

static void start(load *l, int slot, int worker, long sequence, double intended);

static int on_stream_close(nghttp2_session *session, int32_t stream_id, uint32_t error_code, void *user) {
    (void)session; (void)error_code;
    load *l = user;
    call *c = call_of(l, stream_id);
    if (!c) return 0;
    double finished = now_s(), latency = finished - c->sent;
    int status = c->http_status == 200 && c->grpc_status >= 0 && c->grpc_status <= 16 ? c->grpc_status : 17;
    l->done++;
    l->in_flight--;
    /* Counted: sent (open loop: scheduled) in the window, and (closed loop) answered within it too. */
    if (c->sent >= l->window_start && c->sent < l->window_end && (l->options->rate > 0 || finished <= l->window_end)) {
        keep(status == 0 ? &l->ok : &l->not_ok, latency);
        l->codes[status]++;
    }
    if (l->options->rate > 0) l->free_slots[l->free_count++] = (int)(c - l->calls);
    else if (finished < l->window_end) start(l, c->worker, c->worker, c->sequence + 1, 0);
    return 0;
}

#define HEADER(name, value) {(uint8_t *)(name), (uint8_t *)(value), sizeof(name) - 1, strlen(value), NGHTTP2_NV_FLAG_NONE}

/* The headers every call sends (the bearer token last, and only when there is one). */
static void prepare_headers(load *l) {
    const options *o = l->options;
    snprintf(l->authority, sizeof l->authority, "%s:%s", o->host, o->port);
    snprintf(l->bearer, sizeof l->bearer, "Bearer %s", o->token ? o->token : "");
    snprintf(l->timeout, sizeof l->timeout, "%dm", o->deadline_ms);
    const char *path = l->submit ? "/kangyi.intake.v1.IntakeService/SubmitHelpRequest" : "/kangyi.bench.v1.Bench/Noop";
    nghttp2_nv headers[] = {
        HEADER(":method", "POST"), HEADER(":scheme", "http"), HEADER(":path", path), HEADER(":authority", l->authority),
        HEADER("content-type", "application/grpc"), HEADER("te", "trailers"), HEADER("grpc-timeout", l->timeout),
        HEADER("user-agent", "kangyi-load/1"), HEADER("authorization", l->bearer),
    };
    memcpy(l->headers, headers, sizeof headers);
    l->header_count = o->token ? 9 : 8;
}

/* Starts a call in `slot`; `intended` is its scheduled send time (open loop), 0 for now. */
static void start(load *l, int slot, int worker, long sequence, double intended) {
    call *c = &l->calls[slot];
    c->worker = worker;
    c->sequence = sequence;
    c->grpc_status = -1;
    c->http_status = 0;
    encode(l, c);
    nghttp2_data_provider provider = {.source = {.ptr = c}, .read_callback = read_callback};
    c->sent = intended > 0 ? intended : now_s();
    c->stream_id = nghttp2_submit_request(l->session, NULL, l->headers, l->header_count, &provider, c);
    if (c->stream_id < 0) {
        fprintf(stderr, "kangyi-load: cannot start a call: %s\n", nghttp2_strerror(c->stream_id));
        l->broken = 1;
        return;
    }
    l->in_flight++;
}

/* --- the run --- */

static const char *code_names[] = {
    "ok", "cancelled", "unknown", "invalidArgument", "deadlineExceeded", "notFound", "alreadyExists",
    "permissionDenied", "resourceExhausted", "failedPrecondition", "aborted", "outOfRange", "unimplemented",
    "internalError", "unavailable", "dataLoss", "unauthenticated", "transport",
};

static int write_report(load *l) {
    const options *o = l->options;
    qsort(l->ok.values, l->ok.count, sizeof(double), by_value);
    qsort(l->not_ok.values, l->not_ok.count, sizeof(double), by_value);
    FILE *out = o->json ? fopen(o->json, "w") : stdout;
    if (!out) {
        fprintf(stderr, "kangyi-load: cannot write %s: %s\n", o->json, strerror(errno));
        return 1;
    }
    fprintf(out, "{\n  \"run\": \"%s\", \"rpc\": \"%s\", \"mode\": \"%s\", \"generator\": \"kangyi-load\",\n", o->run, o->rpc,
            o->rate > 0 ? "open" : "closed");
    if (o->rate > 0) fprintf(out, "  \"offered_rate_per_s\": %.3f, \"late\": %ld,\n", o->rate, l->late);
    else fprintf(out, "  \"concurrency\": %d,\n", o->concurrency);
    fprintf(out, "  \"seconds\": %d, \"calls\": %ld,\n", o->seconds, l->done);
    fprintf(out, "  \"ok\": %zu, \"rate_per_s\": %.3f,\n", l->ok.count, (double)l->ok.count / o->seconds);
    fprintf(out, "  \"p50_ms\": %.3f, \"p90_ms\": %.3f, \"p99_ms\": %.3f, \"p999_ms\": %.3f, \"max_ms\": %.3f,\n",
            at(&l->ok, 50), at(&l->ok, 90), at(&l->ok, 99), at(&l->ok, 99.9), at(&l->ok, 100));
    fprintf(out, "  \"not_ok\": %zu, \"not_ok_p50_ms\": %.3f, \"not_ok_p99_ms\": %.3f,\n  \"codes\": {",
            l->not_ok.count, at(&l->not_ok, 50), at(&l->not_ok, 99));
    int first = 1;
    for (int i = 0; i <= 17; i++) {
        if (!l->codes[i]) continue;
        fprintf(out, "%s\"%s\": %ld", first ? "" : ", ", code_names[i], l->codes[i]);
        first = 0;
    }
    fprintf(out, "}\n}\n");
    if (out != stdout) fclose(out);
    return 0;
}

static void usage(FILE *to) {
    fprintf(to,
            "usage: kangyi-load --target HOST:PORT [--rpc submit|noop] [--concurrency N | --rate R] [--seconds S]\n"
            "                   [--phone-block B] [--token T] [--deadline-ms MS] [--json FILE]\n"
            "Unary load over plaintext HTTP/2, measured for S seconds after a %d s warm-up: closed loop, N\n"
            "calls in flight, each sent when the last is answered; or open loop, R calls a second on\n"
            "schedule, each one's latency from when it should have been sent. Writes the figures as JSON\n"
            "(stdout without --json). --phone-block (0-699) keeps runs in one\n"
            "database from repeating each other's submissions.\n", WARM_UP_S);
}

int main(int argc, char **argv) {
    options o = {.rpc = "submit", .concurrency = 32, .seconds = 10, .deadline_ms = 5000, .phone_block = -1};
    char *target = NULL;
    static struct option long_options[] = {
        {"target", required_argument, 0, 't'}, {"rpc", required_argument, 0, 'r'},
        {"concurrency", required_argument, 0, 'c'}, {"seconds", required_argument, 0, 's'},
        {"phone-block", required_argument, 0, 'p'}, {"token", required_argument, 0, 'k'},
        {"deadline-ms", required_argument, 0, 'd'}, {"json", required_argument, 0, 'j'},
        {"rate", required_argument, 0, 'R'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0},
    };
    for (int option; (option = getopt_long(argc, argv, "", long_options, NULL)) != -1;) {
        switch (option) {
        case 't': target = optarg; break;
        case 'r': o.rpc = optarg; break;
        case 'c': o.concurrency = atoi(optarg); break;
        case 's': o.seconds = atoi(optarg); break;
        case 'p': o.phone_block = atoi(optarg); break;
        case 'k': o.token = optarg; break;
        case 'd': o.deadline_ms = atoi(optarg); break;
        case 'j': o.json = optarg; break;
        case 'R': o.rate = atof(optarg); break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    char *colon = target ? strrchr(target, ':') : NULL;
    if (!colon || colon == target || (strcmp(o.rpc, "submit") != 0 && strcmp(o.rpc, "noop") != 0) || o.concurrency < 1 ||
        o.concurrency > MAX_CONCURRENCY || o.seconds < 1 || o.deadline_ms < 1 || o.phone_block > 699 || o.rate < 0 ||
        (o.rate > 0 && o.rate * (WARM_UP_S + o.seconds) > 100000)) {
        usage(stderr);
        return 2;
    }
    *colon = 0;
    o.host = target;
    o.port = colon + 1;
    struct timespec seed;
    clock_gettime(CLOCK_REALTIME, &seed);
    srandom((unsigned)(seed.tv_nsec ^ seed.tv_sec ^ getpid()));
    snprintf(o.run, sizeof o.run, "%08lx", (unsigned long)random() ^ (unsigned long)seed.tv_nsec);
    if (o.phone_block < 0) o.phone_block = (int)(strtoul(o.run, NULL, 16) % 700);

    static load l;
    l.options = &o;
    l.submit = strcmp(o.rpc, "submit") == 0;
    prepare_headers(&l);
    l.fd = kangyi_connect(o.host, o.port);
    if (l.fd < 0) {
        fprintf(stderr, "kangyi-load: cannot connect to %s:%s: %s\n", o.host, o.port, strerror(errno));
        return 1;
    }
    fcntl(l.fd, F_SETFL, fcntl(l.fd, F_GETFL) | O_NONBLOCK);
    l.session = kangyi_client_session(send_callback, on_header, on_data, on_stream_close, NULL, &l);
    if (!l.session) {
        fprintf(stderr, "kangyi-load: out of memory\n");
        return 1;
    }
    nghttp2_settings_entry settings[] = {{NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 1 << 20}};
    nghttp2_submit_settings(l.session, NGHTTP2_FLAG_NONE, settings, 1);

    double begin = now_s();
    l.window_start = begin + WARM_UP_S;
    l.window_end = l.window_start + o.seconds;
    long scheduled = 0;  /* open loop: calls sent or skipped so far */
    if (o.rate > 0) {
        for (int slot = MAX_OPEN_IN_FLIGHT - 1; slot >= 0; slot--) l.free_slots[l.free_count++] = slot;
    } else {
        for (int worker = 0; worker < o.concurrency; worker++) start(&l, worker, worker, 1, 0);
    }

    /* Until the window ends and every call in flight is answered (or its deadline and a second more pass). */
    double give_up = l.window_end + o.deadline_ms / 1000.0 + 1;
    uint8_t buffer[65536];
    while (!l.broken && (l.in_flight > 0 || now_s() < l.window_end) && now_s() < give_up) {
        double wait = 0.1;
        if (o.rate > 0) {
            for (double intended; (intended = begin + (double)scheduled / o.rate) < l.window_end; scheduled++) {
                double ahead = intended - now_s();
                if (ahead > 0) {
                    if (ahead < wait) wait = ahead;
                    break;
                }
                if (l.free_count == 0) l.late++;
                else start(&l, l.free_slots[--l.free_count], 0, scheduled, intended);
            }
        }
        if (nghttp2_session_send(l.session) != 0) { l.broken = 1; break; }
        struct pollfd p = {l.fd, POLLIN | (nghttp2_session_want_write(l.session) ? POLLOUT : 0), 0};
        struct timespec timeout = {(time_t)wait, (long)((wait - (double)(time_t)wait) * 1e9)};
        if (ppoll(&p, 1, &timeout, NULL) < 0 && errno != EINTR) { l.broken = 1; break; }
        if (!(p.revents & (POLLIN | POLLHUP | POLLERR))) continue;
        for (;;) {
            ssize_t n = recv(l.fd, buffer, sizeof buffer, 0);
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
            if (n <= 0) { l.broken = 1; break; }
            if (nghttp2_session_mem_recv(l.session, buffer, (size_t)n) < 0) { l.broken = 1; break; }
        }
    }
    if (l.broken) fprintf(stderr, "kangyi-load: the connection failed with %d calls in flight\n", l.in_flight);
    /* Calls still unanswered count as transport failures, like the Swift generator's. */
    l.done += l.in_flight;
    nghttp2_session_del(l.session);
    close(l.fd);
    int written = write_report(&l);
    return written || l.broken ? 1 : 0;
}
