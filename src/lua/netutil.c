/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The pure parts of cella.net (netutil.h): URLs through libcurl's URL API,
 * redirect rules, header checks, the WebSocket accept key (OpenSSL's SHA-1).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>
#include <openssl/evp.h>

#include "base/utf8.h"
#include "lua/netutil.h"

static const struct {
        const char *name;
        NetScheme scheme;
        uint16_t port;
        bool tls;
} schemes[] = {
        {"http", NET_SCHEME_HTTP, 80, false},
        {"https", NET_SCHEME_HTTPS, 443, true},
        {"ws", NET_SCHEME_WS, 80, false},
        {"wss", NET_SCHEME_WSS, 443, true},
};

/* Parses url into a new CURLU with a scheme of allowed. */
static int parse(const char *url, unsigned allowed, CURLU **ret)
{
        CURLU *u;
        char *scheme = NULL;
        CURLUcode uc;
        int r = -EPROTONOSUPPORT;

        if (!url || !*url || strlen(url) > NET_URL_MAX)
                return -EINVAL;
        u = curl_url();
        if (!u)
                return -ENOMEM;
        /* ws and wss are not schemes this libcurl knows: NON_SUPPORT_SCHEME. */
        uc = curl_url_set(u, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME);
        if (uc != CURLUE_OK) {
                curl_url_cleanup(u);
                return uc == CURLUE_OUT_OF_MEMORY ? -ENOMEM : -EINVAL;
        }
        if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK) {
                curl_url_cleanup(u);
                return -EINVAL;
        }
        for (size_t i = 0; i < sizeof schemes / sizeof schemes[0]; i++)
                if (strcasecmp(scheme, schemes[i].name) == 0 && (allowed & schemes[i].scheme))
                        r = 0;
        curl_free(scheme);
        if (r < 0) {
                curl_url_cleanup(u);
                return r;
        }
        *ret = u;
        return 0;
}

static int target_of(CURLU *u, NetTarget *t)
{
        char *scheme = NULL, *host = NULL, *port = NULL, *zone = NULL;
        int r = -EINVAL;

        memset(t, 0, sizeof(*t));
        /* An IPv6 zone id names an interface of the app's namespace: never one. */
        if (curl_url_get(u, CURLUPART_ZONEID, &zone, 0) == CURLUE_OK) {
                curl_free(zone);
                return -EINVAL;
        }
        if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
            curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK)
                goto out;
        for (size_t i = 0; i < sizeof schemes / sizeof schemes[0]; i++)
                if (strcasecmp(scheme, schemes[i].name) == 0) {
                        t->scheme = schemes[i].scheme;
                        t->port = schemes[i].port;
                        t->tls = schemes[i].tls;
                }
        if (!t->scheme || !*host || strlen(host) > NET_HOST_MAX || strchr(host, '%'))
                goto out;
        for (char *p = host; *p; p++)
                *p = (char)(*p >= 'A' && *p <= 'Z' ? *p - 'A' + 'a' : *p);
        memcpy(t->host, host, strlen(host) + 1);
        if (curl_url_get(u, CURLUPART_PORT, &port, 0) == CURLUE_OK) {
                char *end;
                unsigned long p = strtoul(port, &end, 10);

                if (*end || p == 0 || p > 65535)
                        goto out;
                t->port = (uint16_t)p;
        }
        r = 0;
out:
        curl_free(scheme);
        curl_free(host);
        curl_free(port);
        return r;
}

int net_url_target(const char *url, unsigned allowed, NetTarget *t, char **ret_url)
{
        CURLU *u;
        int r = parse(url, allowed, &u);

        if (r < 0)
                return r;
        r = target_of(u, t);
        if (r == 0 && ret_url) {
                char *s = NULL;

                if (curl_url_get(u, CURLUPART_URL, &s, 0) != CURLUE_OK)
                        r = -ENOMEM;
                else {
                        *ret_url = strdup(s);
                        curl_free(s);
                        if (!*ret_url)
                                r = -ENOMEM;
                }
        }
        curl_url_cleanup(u);
        return r;
}

int net_url_resolve(const char *base, const char *location, char **ret)
{
        CURLU *u;
        char *s = NULL;
        NetTarget t;
        int r;

        if (!location || !*location || strlen(location) > NET_URL_MAX)
                return -EINVAL;
        r = parse(base, NET_SCHEME_HTTP | NET_SCHEME_HTTPS, &u);
        if (r < 0)
                return r;
        /* Setting a URL on a handle that has one resolves a relative reference
         * against it (curl_url_set(3)). */
        if (curl_url_set(u, CURLUPART_URL, location, CURLU_NON_SUPPORT_SCHEME) != CURLUE_OK) {
                curl_url_cleanup(u);
                return -EINVAL;
        }
        r = target_of(u, &t);
        if (r == 0 && !(t.scheme & (NET_SCHEME_HTTP | NET_SCHEME_HTTPS)))
                r = -EPROTONOSUPPORT;
        if (r == 0 && curl_url_get(u, CURLUPART_URL, &s, 0) != CURLUE_OK)
                r = -ENOMEM;
        if (r == 0) {
                *ret = strlen(s) > NET_URL_MAX ? NULL : strdup(s);
                if (!*ret)
                        r = strlen(s) > NET_URL_MAX ? -EINVAL : -ENOMEM;
        }
        curl_free(s);
        curl_url_cleanup(u);
        if (r == -EINVAL && t.scheme == 0)
                r = -EPROTONOSUPPORT; /* a scheme target_of() does not know */
        return r;
}

bool net_is_redirect(long status)
{
        return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}

const char *net_redirect_method(long status, const char *method, bool *keep_body)
{
        *keep_body = true;
        if (status == 303) {
                *keep_body = false;
                return strcmp(method, "HEAD") == 0 ? "HEAD" : "GET";
        }
        if ((status == 301 || status == 302) && strcmp(method, "POST") == 0) {
                *keep_body = false;
                return "GET";
        }
        return method;
}

bool net_same_origin(const NetTarget *a, const NetTarget *b)
{
        return a->scheme == b->scheme && a->port == b->port && strcmp(a->host, b->host) == 0;
}

bool net_header_name_ok(const char *s, size_t len)
{
        /* tchar: "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." / "^" /
         * "_" / "`" / "|" / "~" / DIGIT / ALPHA */
        if (len == 0 || len > 256)
                return false;
        for (size_t i = 0; i < len; i++) {
                unsigned char c = (unsigned char)s[i];

                if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                      (c && strchr("!#$%&'*+-.^_`|~", c))))
                        return false;
        }
        return true;
}

bool net_header_value_ok(const char *s, size_t len)
{
        if (len > 8192)
                return false;
        for (size_t i = 0; i < len; i++)
                if (s[i] == '\r' || s[i] == '\n' || s[i] == 0)
                        return false;
        return true;
}

bool net_method_ok(const char *s, size_t len)
{
        if (len == 0 || len > 16)
                return false;
        for (size_t i = 0; i < len; i++)
                if (!(s[i] >= 'A' && s[i] <= 'Z') && s[i] != '-' && s[i] != '_')
                        return false;
        return true;
}

void net_ws_accept(const char *key, char out[29])
{
        static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned int n = 0;
        EVP_MD_CTX *c = EVP_MD_CTX_new();

        /* One digest of 60 bytes; only an allocation can fail (then "" is no
         * handshake's answer, and the handshake fails). */
        if (!c || !EVP_DigestInit_ex(c, EVP_sha1(), NULL) ||
            !EVP_DigestUpdate(c, key, strlen(key)) || !EVP_DigestUpdate(c, guid, sizeof guid - 1) ||
            !EVP_DigestFinal_ex(c, md, &n) || n != 20) {
                EVP_MD_CTX_free(c);
                out[0] = 0;
                return;
        }
        EVP_MD_CTX_free(c);
        EVP_EncodeBlock((unsigned char *)out, md, 20);
        out[28] = 0;
}

/* Whether the list value v (len bytes, comma-separated) holds token tok,
 * case-insensitively. */
static bool list_has(const char *v, size_t len, const char *tok)
{
        size_t tl = strlen(tok);

        while (len) {
                size_t n = 0;

                while (len && (*v == ' ' || *v == '\t' || *v == ',')) {
                        v++;
                        len--;
                }
                while (n < len && v[n] != ',')
                        n++;
                {
                        size_t m = n;

                        while (m && (v[m - 1] == ' ' || v[m - 1] == '\t'))
                                m--;
                        if (m == tl && strncasecmp(v, tok, tl) == 0)
                                return true;
                }
                v += n;
                len -= n;
        }
        return false;
}

int net_ws_check_response(const char *head, size_t len, const char *accept, const char **why)
{
        const char *p = head, *end = head + len;
        bool upgrade = false, connection = false, accepted = false;

        if (len < 12 || memcmp(head, "HTTP/1.1 ", 9) != 0) {
                *why = "not an HTTP/1.1 response";
                return -EPROTO;
        }
        if (memcmp(head + 9, "101", 3) != 0 || (len > 12 && head[12] != ' ' && head[12] != '\r')) {
                *why = "the server did not switch protocols (status not 101)";
                return -EPROTO;
        }
        while (p < end) {
                const char *eol = memchr(p, '\n', (size_t)(end - p)), *colon, *v, *ve;

                eol = eol ? eol : end;
                colon = memchr(p, ':', (size_t)(eol - p));
                if (colon) {
                        size_t nl = (size_t)(colon - p);

                        v = colon + 1;
                        ve = eol;
                        while (v < ve && (*v == ' ' || *v == '\t'))
                                v++;
                        while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ' || ve[-1] == '\t'))
                                ve--;
                        if (nl == 7 && strncasecmp(p, "upgrade", 7) == 0)
                                upgrade = list_has(v, (size_t)(ve - v), "websocket");
                        else if (nl == 10 && strncasecmp(p, "connection", 10) == 0)
                                connection = list_has(v, (size_t)(ve - v), "upgrade");
                        else if (nl == 20 && strncasecmp(p, "sec-websocket-accept", 20) == 0)
                                accepted = accept[0] && (size_t)(ve - v) == strlen(accept) &&
                                           memcmp(v, accept, strlen(accept)) == 0;
                }
                p = eol + 1;
        }
        if (!upgrade) {
                *why = "no \"Upgrade: websocket\" in the answer";
                return -EPROTO;
        }
        if (!connection) {
                *why = "no \"Connection: Upgrade\" in the answer";
                return -EPROTO;
        }
        if (!accepted) {
                *why = "Sec-WebSocket-Accept missing or not the key's";
                return -EPROTO;
        }
        return 0;
}

bool net_utf8_valid(const char *s, size_t len)
{
        return utf8_is_valid(s, len);
}
