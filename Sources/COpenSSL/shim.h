#ifndef NSYNC_COPENSSL_SHIM_H
#define NSYNC_COPENSSL_SHIM_H
// OpenSSL's function-like macros cannot be imported by Swift; each one we
// need gets a tiny static inline function here, named nsync_<macro>.
#include <openssl/ssl.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <openssl/pem.h>
#include <openssl/bio.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

static inline long nsync_BIO_pending(BIO *b) { return BIO_pending(b); }
static inline long nsync_BIO_set_mem_eof_return(BIO *b, int v) { return BIO_set_mem_eof_return(b, v); }
static inline long nsync_SSL_CTX_set_min_proto_version(SSL_CTX *c, int v) { return SSL_CTX_set_min_proto_version(c, v); }
static inline long nsync_SSL_CTX_set_max_proto_version(SSL_CTX *c, int v) { return SSL_CTX_set_max_proto_version(c, v); }
static inline long nsync_SSL_CTX_set_mode(SSL_CTX *c, long m) { return SSL_CTX_set_mode(c, m); }
static inline long nsync_SSL_set_tlsext_host_name(SSL *s, const char *name) { return SSL_set_tlsext_host_name(s, name); }
// TLS layer (Sources/NsyncServer/TLS): option bits are SSL_OP_BIT(n) macros,
// the rest are ctrl macros; each gets a function Swift can call.
static inline uint64_t nsync_SSL_OP_CIPHER_SERVER_PREFERENCE(void) { return SSL_OP_CIPHER_SERVER_PREFERENCE; }
static inline uint64_t nsync_SSL_OP_NO_TICKET(void) { return SSL_OP_NO_TICKET; }
static inline uint64_t nsync_SSL_OP_NO_COMPRESSION(void) { return SSL_OP_NO_COMPRESSION; }
static inline uint64_t nsync_SSL_OP_NO_RENEGOTIATION(void) { return SSL_OP_NO_RENEGOTIATION; }
static inline long nsync_SSL_CTX_set_read_ahead(SSL_CTX *c, int on) { return SSL_CTX_set_read_ahead(c, on); }
static inline long nsync_SSL_CTX_set_session_cache_mode(SSL_CTX *c, long m) { return SSL_CTX_set_session_cache_mode(c, m); }
static inline void nsync_BIO_set_retry_read(BIO *b) { BIO_set_retry_read(b); }
static inline void nsync_BIO_clear_retry_flags(BIO *b) { BIO_clear_retry_flags(b); }
// GENERAL_NAMES is a STACK_OF macro type: count and index it here.
static inline int nsync_GENERAL_NAMES_count(const GENERAL_NAMES *n) { return sk_GENERAL_NAME_num(n); }
static inline const GENERAL_NAME *nsync_GENERAL_NAMES_at(const GENERAL_NAMES *n, int i) { return sk_GENERAL_NAME_value(n, i); }
#endif
