/* One upload attempt: a connection to the gateway (h2c, or TLS with ALPN h2), one UploadVehicleLogs
 * stream carrying every spooled log, acknowledgements applied to the spool as they arrive. */
#ifndef KANGYI_TERMINAL_UPLOAD_H
#define KANGYI_TERMINAL_UPLOAD_H

#include "spool.h"

typedef struct {
    const char *host;
    const char *port;
    const char *token;     /* bearer token, or NULL */
    const char *ca_file;   /* TLS when set */
    const char *rejected_path; /* where refused logs are recorded (sequence and reasons, no contents) */
    int idle_timeout_s;    /* an attempt with nothing received for this long is abandoned */
    int verbose;
} upload_options;

typedef enum {
    UPLOAD_DONE = 0,   /* the stream ended OK and everything sent was acknowledged */
    UPLOAD_RETRY = 1,  /* the connection or the stream failed in a way a later attempt may not */
    UPLOAD_FATAL = 2,  /* refused for good (unauthenticated, permission denied, ...) */
} upload_result;

upload_result upload_once(const upload_options *options, spool *s);

#endif
