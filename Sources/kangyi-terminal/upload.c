#include "upload.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <nghttp2/nghttp2.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "kangyi/checkpoint/v1/checkpoint.pb-c.h"
#include "kangyi_net.h"

#define METHOD_PATH "/kangyi.checkpoint.v1.CheckpointService/UploadVehicleLogs"

typedef struct {
    const upload_options *options;
    spool *spool;
    int fd;
    SSL *ssl;
    nghttp2_session *session;
    int32_t stream_id;
    /* Sending: the spool's records from `next_sequence` on, up to BATCH_LOGS of them in one gRPC message
     * (5-byte prefix, then the records). Positions are kept by sequence: acknowledgements drop records
     * from the front of the spool while we send. */
    int64_t next_sequence;  /* the record being sent, or the next one */
    size_t record_offset;   /* bytes of it already sent */
    int64_t batch_last;     /* the last record of the message being sent; 0 between messages */
    uint8_t prefix[5];
    size_t prefix_sent;
    /* Receiving: gRPC frames from DATA, status from trailers. */
    uint8_t *inbox;
    size_t inbox_length, inbox_capacity;
    int grpc_status;        /* -1 until known */
    char grpc_message[256];
    int closed;
    int answered;           /* the server's END_STREAM came: the call is over, whatever is left unsent */
    int failed;
    time_t last_progress;
} attempt;

/* Records what the server refused, by sequence and reason only: a log's contents never go to a file
 * other than the spool, nor to the terminal's output. */
static void record_refusal(attempt *a, const Kangyi__Checkpoint__V1__ItemResult *item) {
    const char *outcome = item->outcome == KANGYI__CHECKPOINT__V1__ITEM_RESULT__OUTCOME__OUTCOME_CONFLICT ? "conflict" : "rejected";
    FILE *file = a->options->rejected_path ? fopen(a->options->rejected_path, "a") : NULL;
    fprintf(stderr, "kangyi-terminal: log %" PRId64 " %s", item->sequence, outcome);
    if (file) fprintf(file, "{\"sequence\":%" PRId64 ",\"outcome\":\"%s\",\"violations\":[", item->sequence, outcome);
    for (size_t i = 0; i < item->n_violations; i++) {
        fprintf(stderr, " %s:%s", item->violations[i]->field, item->violations[i]->reason);
        if (file) fprintf(file, "%s{\"field\":\"%s\",\"reason\":\"%s\"}", i ? "," : "", item->violations[i]->field, item->violations[i]->reason);
    }
    fprintf(stderr, "\n");
    if (file) {
        fprintf(file, "]}\n");
        fclose(file);
    }
}

static void handle_message(attempt *a, const uint8_t *bytes, size_t length) {
    Kangyi__Checkpoint__V1__UploadVehicleLogsResponse *response =
        kangyi__checkpoint__v1__upload_vehicle_logs_response__unpack(NULL, length, bytes);
    if (!response) { a->failed = 1; return; }
    for (size_t i = 0; i < response->n_items; i++) record_refusal(a, response->items[i]);
    if (response->acked_through > a->spool->acked) {
        if (spool_acknowledge(a->spool, response->acked_through) != 0) {
            fprintf(stderr, "kangyi-terminal: cannot record the acknowledgement: %s\n", strerror(errno));
            a->failed = 1;
        }
        if (a->options->verbose) fprintf(stderr, "kangyi-terminal: acknowledged through %" PRId64 "\n", response->acked_through);
    }
    a->last_progress = time(NULL);
    kangyi__checkpoint__v1__upload_vehicle_logs_response__free_unpacked(response, NULL);
}

/* --- nghttp2 callbacks --- */

static ssize_t send_callback(nghttp2_session *session, const uint8_t *data, size_t length, int flags, void *user) {
    (void)session; (void)flags;
    attempt *a = user;
    ssize_t sent;
    if (a->ssl) {
        sent = SSL_write(a->ssl, data, (int)length);
        if (sent <= 0) {
            int error = SSL_get_error(a->ssl, (int)sent);
            return error == SSL_ERROR_WANT_WRITE || error == SSL_ERROR_WANT_READ ? NGHTTP2_ERR_WOULDBLOCK : NGHTTP2_ERR_CALLBACK_FAILURE;
        }
    } else {
        sent = send(a->fd, data, length, MSG_NOSIGNAL);
        if (sent < 0) return errno == EAGAIN || errno == EWOULDBLOCK ? NGHTTP2_ERR_WOULDBLOCK : NGHTTP2_ERR_CALLBACK_FAILURE;
    }
    return sent;
}

/* The index of the first record with a sequence of at least `sequence` (records are in order). */
static size_t first_from(const spool *s, int64_t sequence) {
    size_t low = 0, high = s->count;
    while (low < high) {
        size_t middle = low + (high - low) / 2;
        if (s->records[middle].sequence < sequence) low = middle + 1;
        else high = middle;
    }
    return low;
}

/* A spooled record is an UploadVehicleLogsRequest carrying its log as `log` (field 1, length-delimited:
 * tag byte 0x0A). With the tag of `logs` (field 2: 0x12) the same bytes are one entry of `logs`, and
 * entries laid end to end are one request carrying them all: a backlog goes out BATCH_LOGS logs a
 * message, which costs the server and this client far less per log than a message each. */
#define BATCH_LOGS 64
#define BATCH_BYTES (64 * 1024)
#define LOGS_TAG 0x12

/* Starts a message with the records from `first` on; 0 when there is none. */
static int start_batch(attempt *a, size_t first) {
    spool *s = a->spool;
    if (first >= s->count) return 0;
    size_t end = first, length = 0;
    while (end < s->count && end - first < BATCH_LOGS && (end == first || length + s->records[end].length <= BATCH_BYTES))
        length += s->records[end++].length;
    a->batch_last = s->records[end - 1].sequence;
    a->prefix[0] = 0;
    for (int i = 1; i < 5; i++) a->prefix[i] = (uint8_t)(length >> (8 * (4 - i)));
    a->prefix_sent = 0;
    a->record_offset = 0;
    return 1;
}

/* Frames spooled records into DATA as flow control allows; END_STREAM after the last one. */
static ssize_t read_callback(nghttp2_session *session, int32_t stream_id, uint8_t *buffer, size_t length,
                             uint32_t *flags, nghttp2_data_source *source, void *user) {
    (void)session; (void)stream_id; (void)source;
    attempt *a = user;
    spool *s = a->spool;
    size_t written = 0;
    while (written < length) {
        size_t next = first_from(s, a->next_sequence);
        if (a->batch_last == 0 && !start_batch(a, next)) {
            *flags |= NGHTTP2_DATA_FLAG_EOF;
            break;
        }
        if (a->prefix_sent < 5) {
            size_t chunk = 5 - a->prefix_sent < length - written ? 5 - a->prefix_sent : length - written;
            memcpy(buffer + written, a->prefix + a->prefix_sent, chunk);
            a->prefix_sent += chunk;
            written += chunk;
            continue;
        }
        const spool_record *record = &s->records[next];
        size_t chunk = record->length - a->record_offset < length - written ? record->length - a->record_offset : length - written;
        memcpy(buffer + written, record->bytes + a->record_offset, chunk);
        if (a->record_offset == 0) buffer[written] = LOGS_TAG;
        a->record_offset += chunk;
        written += chunk;
        if (a->record_offset == record->length) {
            a->next_sequence = record->sequence + 1;
            a->record_offset = 0;
            if (record->sequence == a->batch_last) a->batch_last = 0;
        }
    }
    return (ssize_t)written;
}

static int on_header(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name, size_t name_length,
                     const uint8_t *value, size_t value_length, uint8_t flags, void *user) {
    (void)session; (void)flags;
    attempt *a = user;
    if (frame->hd.stream_id != a->stream_id) return 0;
    if (name_length == 11 && memcmp(name, "grpc-status", 11) == 0) {
        char text[16] = {0};
        memcpy(text, value, value_length < 15 ? value_length : 15);
        a->grpc_status = atoi(text);
    } else if (name_length == 12 && memcmp(name, "grpc-message", 12) == 0) {
        size_t n = value_length < sizeof a->grpc_message - 1 ? value_length : sizeof a->grpc_message - 1;
        memcpy(a->grpc_message, value, n);
        a->grpc_message[n] = 0;
    }
    return 0;
}

static int on_data(nghttp2_session *session, uint8_t flags, int32_t stream_id, const uint8_t *data, size_t length, void *user) {
    (void)session; (void)flags;
    attempt *a = user;
    if (stream_id != a->stream_id) return 0;
    if (a->inbox_length + length > a->inbox_capacity) {
        size_t capacity = (a->inbox_length + length) * 2;
        uint8_t *inbox = realloc(a->inbox, capacity);
        if (!inbox) return NGHTTP2_ERR_CALLBACK_FAILURE;
        a->inbox = inbox;
        a->inbox_capacity = capacity;
    }
    memcpy(a->inbox + a->inbox_length, data, length);
    a->inbox_length += length;
    size_t at = 0;
    while (a->inbox_length - at >= 5) {
        uint32_t size = (uint32_t)a->inbox[at + 1] << 24 | (uint32_t)a->inbox[at + 2] << 16 | (uint32_t)a->inbox[at + 3] << 8 | a->inbox[at + 4];
        if (a->inbox[at] != 0) { a->failed = 1; break; }  /* compressed: never asked for */
        if (a->inbox_length - at - 5 < size) break;
        handle_message(a, a->inbox + at + 5, size);
        at += 5 + size;
    }
    memmove(a->inbox, a->inbox + at, a->inbox_length - at);
    a->inbox_length -= at;
    return 0;
}

static int on_stream_close(nghttp2_session *session, int32_t stream_id, uint32_t error_code, void *user) {
    (void)session;
    attempt *a = user;
    if (stream_id == a->stream_id) {
        a->closed = 1;
        if (error_code != NGHTTP2_NO_ERROR && a->grpc_status < 0) a->failed = 1;
    }
    return 0;
}

/* The server's END_STREAM ends the call, even while this side still has logs to send: a server may answer
 * early (an error, or a gateway whose backend is down) and never read the rest, and a stream that stays
 * half-open would leave the terminal waiting for flow-control credit until its idle timeout. */
static int on_frame(nghttp2_session *session, const nghttp2_frame *frame, void *user) {
    (void)session;
    attempt *a = user;
    if (frame->hd.stream_id == a->stream_id && (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) &&
        (frame->hd.type == NGHTTP2_HEADERS || frame->hd.type == NGHTTP2_DATA))
        a->answered = 1;
    return 0;
}

/* --- connection --- */

static SSL *start_tls(int fd, const char *host, const char *ca_file) {
    static SSL_CTX *context;
    if (!context) {
        context = SSL_CTX_new(TLS_client_method());
        if (!context || SSL_CTX_load_verify_locations(context, ca_file, NULL) != 1) return NULL;
        SSL_CTX_set_verify(context, SSL_VERIFY_PEER, NULL);
        SSL_CTX_set_min_proto_version(context, TLS1_2_VERSION);
        static const unsigned char alpn[] = "\x02h2";
        SSL_CTX_set_alpn_protos(context, alpn, sizeof alpn - 1);
    }
    SSL *ssl = SSL_new(context);
    if (!ssl) return NULL;
    SSL_set_fd(ssl, fd);
    SSL_set_tlsext_host_name(ssl, host);
    SSL_set1_host(ssl, host);
    if (SSL_connect(ssl) != 1) {
        SSL_free(ssl);
        return NULL;
    }
    const unsigned char *protocol = NULL;
    unsigned int length = 0;
    SSL_get0_alpn_selected(ssl, &protocol, &length);
    if (length != 2 || memcmp(protocol, "h2", 2) != 0) {
        SSL_free(ssl);
        return NULL;
    }
    return ssl;
}

#define HEADER(name, value) {(uint8_t *)(name), (uint8_t *)(value), sizeof(name) - 1, strlen(value), NGHTTP2_NV_FLAG_NONE}

upload_result upload_once(const upload_options *options, spool *s) {
    attempt a = {0};
    a.options = options;
    a.spool = s;
    a.grpc_status = -1;
    a.next_sequence = s->count ? s->records[0].sequence : 0;
    a.last_progress = time(NULL);
    upload_result result = UPLOAD_RETRY;

    a.fd = kangyi_connect(options->host, options->port);
    if (a.fd < 0) {
        fprintf(stderr, "kangyi-terminal: cannot connect to %s:%s: %s\n", options->host, options->port, strerror(errno));
        return UPLOAD_RETRY;
    }
    if (options->ca_file) {
        a.ssl = start_tls(a.fd, options->host, options->ca_file);
        if (!a.ssl) {
            fprintf(stderr, "kangyi-terminal: TLS with %s failed (certificate, or no h2)\n", options->host);
            ERR_clear_error();
            close(a.fd);
            return UPLOAD_RETRY;
        }
    }
    fcntl(a.fd, F_SETFL, fcntl(a.fd, F_GETFL) | O_NONBLOCK);

    a.session = kangyi_client_session(send_callback, on_header, on_data, on_stream_close, on_frame, &a);
    if (!a.session) goto done;

    nghttp2_settings_entry settings[] = {{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 10}, {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 1 << 20}};
    nghttp2_submit_settings(a.session, NGHTTP2_FLAG_NONE, settings, 2);

    char authority[300], bearer[600];
    snprintf(authority, sizeof authority, "%s:%s", options->host, options->port);
    snprintf(bearer, sizeof bearer, "Bearer %s", options->token ? options->token : "");
    nghttp2_nv headers[] = {
        HEADER(":method", "POST"), HEADER(":scheme", options->ca_file ? "https" : "http"), HEADER(":path", METHOD_PATH),
        HEADER(":authority", authority), HEADER("content-type", "application/grpc"), HEADER("te", "trailers"),
        HEADER("user-agent", "kangyi-terminal/1"), HEADER("authorization", bearer),
    };
    nghttp2_data_provider provider = {.source = {.ptr = NULL}, .read_callback = read_callback};
    a.stream_id = nghttp2_submit_request(a.session, NULL, headers, options->token ? 8 : 7, &provider, &a);
    if (a.stream_id < 0) goto done;

    uint8_t buffer[16384];
    while (!a.closed && !a.answered && !a.failed && (nghttp2_session_want_read(a.session) || nghttp2_session_want_write(a.session))) {
        if (nghttp2_session_send(a.session) != 0) { a.failed = 1; break; }
        struct pollfd p = {a.fd, POLLIN | (nghttp2_session_want_write(a.session) ? POLLOUT : 0), 0};
        int pending = a.ssl ? SSL_pending(a.ssl) : 0;
        if (!pending && poll(&p, 1, 1000) < 0 && errno != EINTR) { a.failed = 1; break; }
        if (pending || (p.revents & (POLLIN | POLLHUP | POLLERR))) {
            for (;;) {
                ssize_t n;
                if (a.ssl) {
                    n = SSL_read(a.ssl, buffer, sizeof buffer);
                    if (n <= 0) {
                        int error = SSL_get_error(a.ssl, (int)n);
                        if (error == SSL_ERROR_WANT_READ || error == SSL_ERROR_WANT_WRITE) break;
                        a.failed = 1;
                        break;
                    }
                } else {
                    n = recv(a.fd, buffer, sizeof buffer, 0);
                    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
                    if (n <= 0) { a.failed = 1; break; }
                }
                if (nghttp2_session_mem_recv(a.session, buffer, (size_t)n) < 0) { a.failed = 1; break; }
                if (a.closed || a.answered) break;
            }
        }
        if (difftime(time(NULL), a.last_progress) > options->idle_timeout_s) {
            fprintf(stderr, "kangyi-terminal: nothing from the server for %d s; reconnecting\n", options->idle_timeout_s);
            a.failed = 1;
        }
    }
    if (a.failed && !a.closed && !a.answered) {
        fprintf(stderr, "kangyi-terminal: the connection failed; %zu logs still to send\n", spool_pending(s));
    } else if (a.grpc_status == 0) {
        result = spool_pending(s) == 0 ? UPLOAD_DONE : UPLOAD_RETRY;
    } else {
        fprintf(stderr, "kangyi-terminal: the server ended the upload: grpc-status %d %s\n", a.grpc_status, a.grpc_message);
        /* 3 INVALID_ARGUMENT, 7 PERMISSION_DENIED, 12 UNIMPLEMENTED, 16 UNAUTHENTICATED: a retry would be refused the same way. */
        if (a.grpc_status == 3 || a.grpc_status == 7 || a.grpc_status == 12 || a.grpc_status == 16) result = UPLOAD_FATAL;
    }
done:
    nghttp2_session_del(a.session);
    if (a.ssl) {
        SSL_shutdown(a.ssl);
        SSL_free(a.ssl);
    }
    close(a.fd);
    free(a.inbox);
    return result;
}
