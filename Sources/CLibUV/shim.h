#ifndef NSYNC_CLIBUV_SHIM_H
#define NSYNC_CLIBUV_SHIM_H
#include <uv.h>
#include <sys/inotify.h>
#include <unistd.h>

// syncfs(2) is a GNU extension Swift's Glibc module does not declare.
extern int syncfs(int fd);
static inline int nsync_syncfs(int fd) { return syncfs(fd); }
#endif
