#include "json.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *at;
    const char *error;
    int depth;
} parser;

static void skip_space(parser *p) {
    while (*p->at == ' ' || *p->at == '\t' || *p->at == '\r' || *p->at == '\n') p->at++;
}

static int parse_value(parser *p, json_value *out);

static void free_contents(json_value *value) {
    free(value->string);
    for (size_t i = 0; i < value->count; i++) {
        free_contents(&value->items[i]);
        if (value->keys) free(value->keys[i]);
    }
    free(value->items);
    free(value->keys);
}

void json_free(json_value *value) {
    if (!value) return;
    free_contents(value);
    free(value);
}

static void put_utf8(char **out, unsigned code) {
    char *o = *out;
    if (code < 0x80) {
        *o++ = (char)code;
    } else if (code < 0x800) {
        *o++ = (char)(0xC0 | (code >> 6));
        *o++ = (char)(0x80 | (code & 0x3F));
    } else if (code < 0x10000) {
        *o++ = (char)(0xE0 | (code >> 12));
        *o++ = (char)(0x80 | ((code >> 6) & 0x3F));
        *o++ = (char)(0x80 | (code & 0x3F));
    } else {
        *o++ = (char)(0xF0 | (code >> 18));
        *o++ = (char)(0x80 | ((code >> 12) & 0x3F));
        *o++ = (char)(0x80 | ((code >> 6) & 0x3F));
        *o++ = (char)(0x80 | (code & 0x3F));
    }
    *out = o;
}

static int hex4(const char *s, unsigned *value) {
    *value = 0;
    for (int i = 0; i < 4; i++) {
        char c = s[i];
        *value <<= 4;
        if (c >= '0' && c <= '9') *value |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f') *value |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') *value |= (unsigned)(c - 'A' + 10);
        else return 0;
    }
    return 1;
}

/* A string starting at the opening quote; the result is NUL-terminated UTF-8 (escapes decoded). */
static char *parse_string(parser *p) {
    const char *s = ++p->at;
    size_t length = 0;
    while (s[length] && s[length] != '"') length += (s[length] == '\\' && s[length + 1]) ? 2 : 1;
    if (!s[length]) { p->error = "unterminated string"; return NULL; }
    char *result = malloc(length + 1), *o = result;
    if (!result) { p->error = "out of memory"; return NULL; }
    while (*p->at != '"') {
        unsigned char c = (unsigned char)*p->at;
        if (c < 0x20) { p->error = "control character in string"; free(result); return NULL; }
        if (c != '\\') { *o++ = (char)c; p->at++; continue; }
        p->at++;
        switch (*p->at) {
        case '"': *o++ = '"'; break;
        case '\\': *o++ = '\\'; break;
        case '/': *o++ = '/'; break;
        case 'b': *o++ = '\b'; break;
        case 'f': *o++ = '\f'; break;
        case 'n': *o++ = '\n'; break;
        case 'r': *o++ = '\r'; break;
        case 't': *o++ = '\t'; break;
        case 'u': {
            unsigned code;
            if (!hex4(p->at + 1, &code)) { p->error = "bad \\u escape"; free(result); return NULL; }
            p->at += 4;
            if (code >= 0xD800 && code < 0xDC00 && p->at[1] == '\\' && p->at[2] == 'u') {
                unsigned low;
                if (hex4(p->at + 3, &low) && low >= 0xDC00 && low < 0xE000) {
                    code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
                    p->at += 6;
                }
            }
            if (code == 0) { p->error = "NUL character in string"; free(result); return NULL; }
            put_utf8(&o, code);  /* a \uXXXX escape is at most 6 input bytes for at most 4 output bytes */
            break;
        }
        default: p->error = "bad escape"; free(result); return NULL;
        }
        p->at++;
    }
    p->at++;
    *o = 0;
    return result;
}

static int append(parser *p, json_value *container, json_value *item, char *key) {
    json_value *items = realloc(container->items, (container->count + 1) * sizeof *items);
    if (!items) { p->error = "out of memory"; return 0; }
    container->items = items;
    if (container->type == JSON_OBJECT) {
        char **keys = realloc(container->keys, (container->count + 1) * sizeof *keys);
        if (!keys) { p->error = "out of memory"; return 0; }
        container->keys = keys;
        keys[container->count] = key;
    }
    items[container->count++] = *item;
    return 1;
}

static int parse_container(parser *p, json_value *out, char close) {
    out->type = close == '}' ? JSON_OBJECT : JSON_ARRAY;
    if (++p->depth > 32) { p->error = "nested too deeply"; return 0; }
    p->at++;
    skip_space(p);
    if (*p->at == close) { p->at++; p->depth--; return 1; }
    for (;;) {
        char *key = NULL;
        skip_space(p);
        if (out->type == JSON_OBJECT) {
            if (*p->at != '"') { p->error = "expected a key"; return 0; }
            if (!(key = parse_string(p))) return 0;
            skip_space(p);
            if (*p->at != ':') { free(key); p->error = "expected ':'"; return 0; }
            p->at++;
        }
        json_value item = {0};
        if (!parse_value(p, &item)) { free(key); free_contents(&item); return 0; }
        if (!append(p, out, &item, key)) { free(key); free_contents(&item); return 0; }
        skip_space(p);
        if (*p->at == ',') { p->at++; continue; }
        if (*p->at == close) { p->at++; p->depth--; return 1; }
        p->error = "expected ',' or the end of the container";
        return 0;
    }
}

static int parse_value(parser *p, json_value *out) {
    skip_space(p);
    switch (*p->at) {
    case '{': return parse_container(p, out, '}');
    case '[': return parse_container(p, out, ']');
    case '"':
        out->type = JSON_STRING;
        return (out->string = parse_string(p)) != NULL;
    case 't': case 'f': case 'n': {
        static const struct { const char *word; json_type type; double value; } words[] = {
            {"true", JSON_BOOL, 1}, {"false", JSON_BOOL, 0}, {"null", JSON_NULL, 0}};
        for (size_t i = 0; i < 3; i++) {
            size_t n = strlen(words[i].word);
            if (strncmp(p->at, words[i].word, n) == 0) {
                out->type = words[i].type;
                out->number = words[i].value;
                p->at += n;
                return 1;
            }
        }
        p->error = "unexpected word";
        return 0;
    }
    default: {
        char *end;
        if (*p->at != '-' && !isdigit((unsigned char)*p->at)) { p->error = "unexpected character"; return 0; }
        out->type = JSON_NUMBER;
        out->number = strtod(p->at, &end);
        if (end == p->at) { p->error = "bad number"; return 0; }
        p->at = end;
        return 1;
    }
    }
}

json_value *json_parse(const char *text, const char **error) {
    parser p = {text, NULL, 0};
    json_value *value = calloc(1, sizeof *value);
    if (!value) { *error = "out of memory"; return NULL; }
    if (!parse_value(&p, value)) {
        *error = p.error;
        json_free(value);
        return NULL;
    }
    skip_space(&p);
    if (*p.at) {
        *error = "trailing characters";
        json_free(value);
        return NULL;
    }
    return value;
}

const json_value *json_get(const json_value *object, const char *key) {
    if (!object || object->type != JSON_OBJECT) return NULL;
    for (size_t i = 0; i < object->count; i++)
        if (strcmp(object->keys[i], key) == 0) return &object->items[i];
    return NULL;
}
