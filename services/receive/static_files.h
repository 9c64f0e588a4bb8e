/* static_files.h: GET/HEAD of files under --static-dir (the demo page):
 * index.html for a path ending in '/', content types for html, js, css, svg,
 * png and json, no path traversal (no segment starting with '.'), files up
 * to 8 MiB. Read synchronously: they are a few small files. */
#ifndef RECV_STATIC_FILES_H
#define RECV_STATIC_FILES_H

#include "http.h"

/* A pr_http_handler for the router's fallback; arg is the directory (NULL:
 * every request is a 404). */
void recv_static_handle(pr_http_req *req, void *arg);

#endif
