/* gk-crypto.c: AES-256-GCM blobs, keyed fingerprints and the key check value.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "config.h"

#include <limits.h>
#include <string.h>

#include <glib/gi18n.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "gk-crypto.h"

G_DEFINE_AUTOPTR_CLEANUP_FUNC (EVP_CIPHER_CTX, EVP_CIPHER_CTX_free)

G_DEFINE_QUARK (gk-crypto-error-quark, gk_crypto_error)

#define BLOB_HEADER_LEN (1 + GK_CRYPTO_NONCE_LEN)
#define BLOB_MIN_LEN    (BLOB_HEADER_LEN + GK_CRYPTO_TAG_LEN)
#define HMAC_LEN        32

/* Domain-separation labels: the master key is never used directly for more
 * than one purpose. Changing a label invalidates every stored value. */
#define FINGERPRINT_LABEL "gemini-keys fingerprint v1"
#define CHECK_VALUE_LABEL "gemini-keys key check value v1"

/* Memory that holds secrets; freeing it wipes it first. @alloc_len may be
 * larger than what the GBytes exposes (the trailing NUL of plaintext). */
typedef struct
{
  gpointer data;
  gsize    alloc_len;
} SecureBlock;

static void
secure_block_free (gpointer user_data)
{
  SecureBlock *block = user_data;

  OPENSSL_cleanse (block->data, block->alloc_len);
  g_free (block->data);
  g_free (block);
}

static GBytes *
secure_bytes_wrap (gpointer data,
                   gsize    len,
                   gsize    alloc_len)
{
  SecureBlock *block = g_new (SecureBlock, 1);

  block->data = data;
  block->alloc_len = alloc_len;
  return g_bytes_new_with_free_func (data, len, secure_block_free, block);
}

GBytes *
gk_secure_bytes_new (gconstpointer data,
                     gsize         len)
{
  /* One spare byte so an empty secret still has a valid pointer. */
  guint8 *copy = g_malloc0 (len + 1);

  if (len > 0)
    memcpy (copy, data, len);
  return secure_bytes_wrap (copy, len, len + 1);
}

GBytes *
gk_secure_bytes_new_take (gpointer data,
                          gsize    len)
{
  return secure_bytes_wrap (data, len, len);
}

GBytes *
gk_crypto_new_master_key (void)
{
  guint8 *key = g_malloc (GK_MASTER_KEY_LEN);

  /* Without a working CSPRNG no key we could make would be safe to use. */
  if (RAND_bytes (key, GK_MASTER_KEY_LEN) != 1)
    g_error ("The system random number generator failed");
  return gk_secure_bytes_new_take (key, GK_MASTER_KEY_LEN);
}

static gboolean
lengths_fit_int (gsize iv_len,
                 gsize aad_len,
                 gsize text_len)
{
  return iv_len > 0 && iv_len <= INT_MAX && aad_len <= INT_MAX && text_len <= INT_MAX;
}

/* AES-256-GCM, fetched from OpenSSL's providers once: EVP_aes_256_gcm()
 * makes each context initialisation fetch it again (a provider lookup and
 * its locks, on every request of the gateway). Kept for the process. */
static const EVP_CIPHER *
aes_256_gcm (void)
{
  static const EVP_CIPHER *cipher;
  static gsize fetched = 0;

  if (g_once_init_enter (&fetched))
    {
      cipher = EVP_CIPHER_fetch (NULL, "AES-256-GCM", NULL);
      g_once_init_leave (&fetched, 1);
    }
  return cipher != NULL ? cipher : EVP_aes_256_gcm ();
}

gboolean
gk_crypto_aes_gcm_encrypt (const guint8 *key,
                           const guint8 *iv,
                           gsize         iv_len,
                           const guint8 *aad,
                           gsize         aad_len,
                           const guint8 *plain,
                           gsize         plain_len,
                           guint8       *cipher_out,
                           guint8       *tag_out)
{
  g_autoptr(EVP_CIPHER_CTX) ctx = NULL;
  guint8 final_block[16];
  int len;

  g_return_val_if_fail (key != NULL && iv != NULL && tag_out != NULL, FALSE);
  g_return_val_if_fail (plain_len == 0 || (plain != NULL && cipher_out != NULL), FALSE);
  g_return_val_if_fail (aad != NULL || aad_len == 0, FALSE);

  if (!lengths_fit_int (iv_len, aad_len, plain_len))
    return FALSE;

  ctx = EVP_CIPHER_CTX_new ();
  if (ctx == NULL
      || EVP_EncryptInit_ex (ctx, aes_256_gcm (), NULL, NULL, NULL) != 1
      || EVP_CIPHER_CTX_ctrl (ctx, EVP_CTRL_GCM_SET_IVLEN, (int) iv_len, NULL) != 1
      || EVP_EncryptInit_ex (ctx, NULL, NULL, key, iv) != 1)
    return FALSE;

  if (aad_len > 0 && EVP_EncryptUpdate (ctx, NULL, &len, aad, (int) aad_len) != 1)
    return FALSE;
  if (plain_len > 0 && EVP_EncryptUpdate (ctx, cipher_out, &len, plain, (int) plain_len) != 1)
    return FALSE;
  /* GCM is a stream mode: Final writes no bytes, it only computes the tag. */
  if (EVP_EncryptFinal_ex (ctx, final_block, &len) != 1)
    return FALSE;
  if (EVP_CIPHER_CTX_ctrl (ctx, EVP_CTRL_GCM_GET_TAG, GK_CRYPTO_TAG_LEN, tag_out) != 1)
    return FALSE;
  return TRUE;
}

gboolean
gk_crypto_aes_gcm_decrypt (const guint8 *key,
                           const guint8 *iv,
                           gsize         iv_len,
                           const guint8 *aad,
                           gsize         aad_len,
                           const guint8 *cipher,
                           gsize         cipher_len,
                           const guint8 *tag,
                           guint8       *plain_out)
{
  g_autoptr(EVP_CIPHER_CTX) ctx = NULL;
  guint8 tag_copy[GK_CRYPTO_TAG_LEN];
  guint8 final_block[16];
  int len;
  gboolean ok = FALSE;

  g_return_val_if_fail (key != NULL && iv != NULL && tag != NULL, FALSE);
  g_return_val_if_fail (cipher_len == 0 || (cipher != NULL && plain_out != NULL), FALSE);
  g_return_val_if_fail (aad != NULL || aad_len == 0, FALSE);

  if (!lengths_fit_int (iv_len, aad_len, cipher_len))
    return FALSE;

  /* EVP_CTRL_GCM_SET_TAG takes a non-const pointer. */
  memcpy (tag_copy, tag, sizeof tag_copy);

  ctx = EVP_CIPHER_CTX_new ();
  if (ctx == NULL
      || EVP_DecryptInit_ex (ctx, aes_256_gcm (), NULL, NULL, NULL) != 1
      || EVP_CIPHER_CTX_ctrl (ctx, EVP_CTRL_GCM_SET_IVLEN, (int) iv_len, NULL) != 1
      || EVP_DecryptInit_ex (ctx, NULL, NULL, key, iv) != 1)
    goto out;

  if (aad_len > 0 && EVP_DecryptUpdate (ctx, NULL, &len, aad, (int) aad_len) != 1)
    goto out;
  if (cipher_len > 0 && EVP_DecryptUpdate (ctx, plain_out, &len, cipher, (int) cipher_len) != 1)
    goto out;
  if (EVP_CIPHER_CTX_ctrl (ctx, EVP_CTRL_GCM_SET_TAG, GK_CRYPTO_TAG_LEN, tag_copy) != 1)
    goto out;
  /* Anything but a positive result means the tag did not verify. */
  ok = EVP_DecryptFinal_ex (ctx, final_block, &len) > 0;

out:
  /* Unauthenticated plaintext must never reach the caller. */
  if (!ok && cipher_len > 0 && plain_out != NULL)
    OPENSSL_cleanse (plain_out, cipher_len);
  return ok;
}

static gboolean
check_master_key (GBytes  *master_key,
                  GError **error)
{
  if (master_key == NULL || g_bytes_get_size (master_key) != GK_MASTER_KEY_LEN)
    {
      g_set_error_literal (error, GK_CRYPTO_ERROR, GK_CRYPTO_ERROR_FAILED,
                           _("The master key has the wrong length"));
      return FALSE;
    }
  return TRUE;
}

GBytes *
gk_crypto_encrypt (GBytes        *master_key,
                   const char    *aad,
                   gconstpointer  plain,
                   gsize          plain_len,
                   GError       **error)
{
  gsize aad_len = aad != NULL ? strlen (aad) : 0;
  gsize blob_len;
  g_autofree guint8 *blob = NULL;

  g_return_val_if_fail (plain != NULL || plain_len == 0, NULL);

  if (!check_master_key (master_key, error))
    return NULL;
  if (plain_len > INT_MAX - BLOB_MIN_LEN)
    {
      g_set_error_literal (error, GK_CRYPTO_ERROR, GK_CRYPTO_ERROR_FAILED,
                           _("The data is too large to encrypt"));
      return NULL;
    }

  blob_len = BLOB_MIN_LEN + plain_len;
  blob = g_malloc (blob_len);
  blob[0] = GK_CRYPTO_VERSION;

  /* A random 96-bit nonce per blob: at the number of keys one person holds,
   * a collision under one master key is out of reach. */
  if (RAND_bytes (blob + 1, GK_CRYPTO_NONCE_LEN) != 1
      || !gk_crypto_aes_gcm_encrypt (g_bytes_get_data (master_key, NULL),
                                     blob + 1, GK_CRYPTO_NONCE_LEN,
                                     (const guint8 *) aad, aad_len,
                                     plain, plain_len,
                                     blob + BLOB_HEADER_LEN,
                                     blob + BLOB_HEADER_LEN + plain_len))
    {
      g_set_error_literal (error, GK_CRYPTO_ERROR, GK_CRYPTO_ERROR_FAILED,
                           _("Encryption failed in libcrypto"));
      return NULL;
    }

  return g_bytes_new_take (g_steal_pointer (&blob), blob_len);
}

GBytes *
gk_crypto_decrypt (GBytes        *master_key,
                   const char    *aad,
                   gconstpointer  blob,
                   gsize          blob_len,
                   GError       **error)
{
  const guint8 *bytes = blob;
  gsize aad_len = aad != NULL ? strlen (aad) : 0;
  gsize plain_len;
  guint8 *plain;

  if (!check_master_key (master_key, error))
    return NULL;

  if (bytes == NULL || blob_len < BLOB_MIN_LEN)
    {
      g_set_error_literal (error, GK_CRYPTO_ERROR, GK_CRYPTO_ERROR_FORMAT,
                           _("The encrypted value is truncated"));
      return NULL;
    }
  if (bytes[0] != GK_CRYPTO_VERSION)
    {
      g_set_error (error, GK_CRYPTO_ERROR, GK_CRYPTO_ERROR_FORMAT,
                   _("The encrypted value has an unknown format version (%u)"), bytes[0]);
      return NULL;
    }

  plain_len = blob_len - BLOB_MIN_LEN;
  /* The extra byte is the NUL terminator promised to callers. */
  plain = g_malloc0 (plain_len + 1);

  if (!gk_crypto_aes_gcm_decrypt (g_bytes_get_data (master_key, NULL),
                                  bytes + 1, GK_CRYPTO_NONCE_LEN,
                                  (const guint8 *) aad, aad_len,
                                  bytes + BLOB_HEADER_LEN, plain_len,
                                  bytes + BLOB_HEADER_LEN + plain_len,
                                  plain))
    {
      OPENSSL_cleanse (plain, plain_len + 1);
      g_free (plain);
      g_set_error_literal (error, GK_CRYPTO_ERROR, GK_CRYPTO_ERROR_AUTH,
                           _("The encrypted value failed authentication: it was altered, "
                             "belongs to another row, or was made with another master key"));
      return NULL;
    }

  return secure_bytes_wrap (plain, plain_len, plain_len + 1);
}

static char *
hex_encode (const guint8 *data,
            gsize         len)
{
  static const char digits[] = "0123456789abcdef";
  char *hex = g_malloc (len * 2 + 1);

  for (gsize i = 0; i < len; i++)
    {
      hex[2 * i] = digits[data[i] >> 4];
      hex[2 * i + 1] = digits[data[i] & 0x0f];
    }
  hex[len * 2] = '\0';
  return hex;
}

static gboolean
hmac_sha256 (const guint8 *key,
             gsize         key_len,
             const void   *data,
             gsize         data_len,
             guint8        out[HMAC_LEN])
{
  unsigned int out_len = 0;

  return HMAC (EVP_sha256 (), key, (int) key_len, data, data_len, out, &out_len) != NULL
         && out_len == HMAC_LEN;
}

char *
gk_crypto_fingerprint (GBytes     *master_key,
                       const char *api_key)
{
  guint8 subkey[HMAC_LEN];
  guint8 mac[HMAC_LEN];
  char *hex = NULL;

  g_return_val_if_fail (master_key != NULL, NULL);
  g_return_val_if_fail (g_bytes_get_size (master_key) == GK_MASTER_KEY_LEN, NULL);
  g_return_val_if_fail (api_key != NULL, NULL);

  /* A subkey, so the fingerprint and the check value never share a key. */
  if (hmac_sha256 (g_bytes_get_data (master_key, NULL), GK_MASTER_KEY_LEN,
                   FINGERPRINT_LABEL, strlen (FINGERPRINT_LABEL), subkey)
      && hmac_sha256 (subkey, sizeof subkey, api_key, strlen (api_key), mac))
    hex = hex_encode (mac, sizeof mac);

  OPENSSL_cleanse (subkey, sizeof subkey);
  OPENSSL_cleanse (mac, sizeof mac);
  return hex;
}

char *
gk_crypto_check_value (GBytes *master_key)
{
  guint8 mac[HMAC_LEN];
  char *hex = NULL;

  g_return_val_if_fail (master_key != NULL, NULL);
  g_return_val_if_fail (g_bytes_get_size (master_key) == GK_MASTER_KEY_LEN, NULL);

  if (hmac_sha256 (g_bytes_get_data (master_key, NULL), GK_MASTER_KEY_LEN,
                   CHECK_VALUE_LABEL, strlen (CHECK_VALUE_LABEL), mac))
    hex = hex_encode (mac, sizeof mac);

  OPENSSL_cleanse (mac, sizeof mac);
  return hex;
}

char *
gk_crypto_sha256_hex (const char *text)
{
  static const EVP_MD *sha256;
  static gsize fetched = 0;
  static const char hex[] = "0123456789abcdef";
  guint8 digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  char *out;

  g_return_val_if_fail (text != NULL, NULL);

  /* libcrypto's SHA-256 (the CPU's SHA instructions where there are)
   * rather than GLib's portable one, which was half of the gateway's token
   * check per request; fetched once, as aes_256_gcm() is. */
  if (g_once_init_enter (&fetched))
    {
      sha256 = EVP_MD_fetch (NULL, "SHA256", NULL);
      g_once_init_leave (&fetched, 1);
    }
  if (EVP_Digest (text, strlen (text), digest, &len, sha256 != NULL ? sha256 : EVP_sha256 (),
                  NULL) != 1)
    return g_compute_checksum_for_string (G_CHECKSUM_SHA256, text, -1);
  out = g_malloc (2 * len + 1);
  for (unsigned int i = 0; i < len; i++)
    {
      out[2 * i] = hex[digest[i] >> 4];
      out[2 * i + 1] = hex[digest[i] & 0xf];
    }
  out[2 * len] = '\0';
  return out;
}

gboolean
gk_crypto_equal_const_time (const char *a,
                            const char *b)
{
  gsize a_len, b_len;

  if (a == NULL || b == NULL)
    return FALSE;

  /* Only the length can leak; the values compared are fixed-length hashes. */
  a_len = strlen (a);
  b_len = strlen (b);
  if (a_len != b_len)
    return FALSE;
  return CRYPTO_memcmp (a, b, a_len) == 0;
}

void
gk_crypto_wipe (gpointer ptr,
                gsize    len)
{
  if (ptr != NULL && len > 0)
    OPENSSL_cleanse (ptr, len);
}

void
gk_crypto_wipe_string (char *str)
{
  if (str == NULL)
    return;
  OPENSSL_cleanse (str, strlen (str));
  g_free (str);
}
