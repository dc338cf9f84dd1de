/* gk-crypto.h: AES-256-GCM for stored keys, fingerprints, key check value.
 *
 * Blob format: version(1) ‖ nonce(12) ‖ ciphertext ‖ tag(16); the associated
 * data is the row's uuid, so a blob moved to another row fails to decrypt.
 * Plaintext is returned in "secure" GBytes that are wiped with
 * OPENSSL_cleanse when freed.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define GK_CRYPTO_ERROR (gk_crypto_error_quark ())

typedef enum
{
  GK_CRYPTO_ERROR_FORMAT,   /* not a blob we know (short, unknown version) */
  GK_CRYPTO_ERROR_AUTH,     /* tag mismatch: tampered, wrong row or wrong key */
  GK_CRYPTO_ERROR_FAILED,   /* libcrypto failure */
} GkCryptoError;

#define GK_MASTER_KEY_LEN   32
#define GK_CRYPTO_VERSION   1
#define GK_CRYPTO_NONCE_LEN 12
#define GK_CRYPTO_TAG_LEN   16

GQuark  gk_crypto_error_quark   (void);

/* GBytes whose memory is wiped (OPENSSL_cleanse) and freed on last unref. */
GBytes *gk_secure_bytes_new     (gconstpointer  data,
                                 gsize          len);
/* Takes @data (g_malloc'ed) and wipes it on free. */
GBytes *gk_secure_bytes_new_take (gpointer      data,
                                  gsize         len);
/* A new random master key (secure bytes). */
GBytes *gk_crypto_new_master_key (void);

/* Raw AES-256-GCM (for known-answer tests and the blob functions).
 * @tag is 16 bytes. Returns FALSE on failure / authentication failure. */
gboolean gk_crypto_aes_gcm_encrypt (const guint8 *key,
                                    const guint8 *iv,
                                    gsize         iv_len,
                                    const guint8 *aad,
                                    gsize         aad_len,
                                    const guint8 *plain,
                                    gsize         plain_len,
                                    guint8       *cipher_out,
                                    guint8       *tag_out);
gboolean gk_crypto_aes_gcm_decrypt (const guint8 *key,
                                    const guint8 *iv,
                                    gsize         iv_len,
                                    const guint8 *aad,
                                    gsize         aad_len,
                                    const guint8 *cipher,
                                    gsize         cipher_len,
                                    const guint8 *tag,
                                    guint8       *plain_out);

/* Encrypts @plain into a versioned blob with a random nonce. */
GBytes *gk_crypto_encrypt       (GBytes        *master_key,
                                 const char    *aad,
                                 gconstpointer  plain,
                                 gsize          plain_len,
                                 GError       **error);
/* Decrypts a blob; the result is secure bytes with a trailing NUL byte not
 * counted in its size, so it can be used as a C string. */
GBytes *gk_crypto_decrypt       (GBytes        *master_key,
                                 const char    *aad,
                                 gconstpointer  blob,
                                 gsize          blob_len,
                                 GError       **error);
/* Hex HMAC-SHA256 of @api_key under a subkey derived from the master key:
 * duplicate detection without decrypting. */
char   *gk_crypto_fingerprint   (GBytes        *master_key,
                                 const char    *api_key);
/* Hex value that identifies the master key without revealing it; stored in
 * meta so "wrong master key" is told apart from "corrupt row". */
char   *gk_crypto_check_value   (GBytes        *master_key);
/* Hex SHA-256 of arbitrary text (gateway token hashes). */
char   *gk_crypto_sha256_hex    (const char    *text);
/* Constant-time comparison of two NUL-terminated strings. */
gboolean gk_crypto_equal_const_time (const char *a,
                                     const char *b);
/* Wipes @len bytes at @ptr (OPENSSL_cleanse). */
void    gk_crypto_wipe          (gpointer       ptr,
                                 gsize          len);
/* Wipes and frees a NUL-terminated string; NULL is fine. */
void    gk_crypto_wipe_string   (char          *str);

G_END_DECLS
