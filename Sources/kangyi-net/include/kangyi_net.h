/* What the C clients (kangyi-terminal, kangyi-load) share: their TCP connection and HTTP/2 session. */
#ifndef KANGYI_NET_H
#define KANGYI_NET_H

#include <nghttp2/nghttp2.h>

/* A blocking TCP connection to host:port (the first address that answers), with TCP_NODELAY set:
 * gRPC messages are small and latency-bound. -1 with errno set when none connects. */
int kangyi_connect(const char *host, const char *port);

/* An HTTP/2 client session calling back with `user`: bytes out through `send`, each header, each chunk
 * of DATA, each stream's end, and each whole frame received (`on_frame`, may be NULL). NULL when nghttp2
 * cannot allocate one. */
nghttp2_session *kangyi_client_session(nghttp2_send_callback send, nghttp2_on_header_callback on_header,
                                       nghttp2_on_data_chunk_recv_callback on_data,
                                       nghttp2_on_stream_close_callback on_stream_close,
                                       nghttp2_on_frame_recv_callback on_frame, void *user);

#endif
