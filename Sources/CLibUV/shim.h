#ifndef NSYNC_CLIBUV_SHIM_H
#define NSYNC_CLIBUV_SHIM_H
#include <uv.h>
#include <sys/inotify.h>
#endif
