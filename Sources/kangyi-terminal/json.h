/* A small JSON reader for the terminal's input lines: enough of RFC 8259 for one object per line. */
#ifndef KANGYI_TERMINAL_JSON_H
#define KANGYI_TERMINAL_JSON_H

#include <stddef.h>

typedef enum { JSON_NULL, JSON_BOOL, JSON_NUMBER, JSON_STRING, JSON_ARRAY, JSON_OBJECT } json_type;

typedef struct json_value {
    json_type type;
    double number;           /* JSON_NUMBER, JSON_BOOL (0 or 1) */
    char *string;            /* JSON_STRING: UTF-8, NUL-terminated */
    struct json_value *items; /* JSON_ARRAY, JSON_OBJECT: `count` values */
    char **keys;             /* JSON_OBJECT: `count` keys */
    size_t count;
} json_value;

/* Parses `text` (NUL-terminated); returns NULL and sets *error on malformed input. */
json_value *json_parse(const char *text, const char **error);
void json_free(json_value *value);
/* The member `key` of an object, or NULL. */
const json_value *json_get(const json_value *object, const char *key);

#endif
