/* test-crypto.c: AES-256-GCM known answers, blob tampering, fingerprints.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "config.h"

#include <string.h>

#include "gk-core.h"

typedef struct
{
  const char *name;
  const char *key;
  const char *iv;
  const char *aad;
  const char *plain;
  const char *cipher;
  const char *tag;
} GcmVector;

/* From "The Galois/Counter Mode of Operation" (McGrew & Viega), appendix B,
 * test cases 13–16, and one CAVP gcmEncryptExtIV256 vector with AAD. */
static const GcmVector vectors[] = {
  { "spec-13 (empty)",
    "0000000000000000000000000000000000000000000000000000000000000000",
    "000000000000000000000000",
    "",
    "",
    "",
    "530f8afbc74536b9a963b4f1c4cb738b" },
  { "spec-14 (one zero block)",
    "0000000000000000000000000000000000000000000000000000000000000000",
    "000000000000000000000000",
    "",
    "00000000000000000000000000000000",
    "cea7403d4d606b6e074ec5d3baf39d18",
    "d0d1c8a799996bf0265b98b5d48ab919" },
  { "spec-15 (no AAD)",
    "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308",
    "cafebabefacedbaddecaf888",
    "",
    "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
    "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255",
    "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
    "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662898015ad",
    "b094dac5d93471bdec1a502270e3cc6c" },
  { "spec-16 (AAD)",
    "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308",
    "cafebabefacedbaddecaf888",
    "feedfacedeadbeeffeedfacedeadbeefabaddad2",
    "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
    "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
    "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
    "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662",
    "76fc6ece0f4e1768cddf8853bb2d551b" },
  { "cavp-extiv256 (AAD)",
    "83688deb4af8007f9b713b47cfa6c73e35ea7a3aa4ecdb414dded03bf7a0fd3a",
    "0b459724904e010a46901cf3",
    "794a14ccd178c8ebfd1379dc704c5e208f9d8424",
    "33d893a2114ce06fc15d55e454cf90c3",
    "cc66bee423e3fcd4c0865715e9586696",
    "0fb291bd3dba94a1dfd8b286cfb97ac5" },
};

static GBytes *
from_hex (const char *hex)
{
  gsize len = strlen (hex);
  guint8 *out;

  g_assert_cmpuint (len % 2, ==, 0);
  out = g_malloc0 (len / 2 + 1);
  for (gsize i = 0; i < len / 2; i++)
    {
      int hi = g_ascii_xdigit_value (hex[2 * i]);
      int lo = g_ascii_xdigit_value (hex[2 * i + 1]);

      g_assert_cmpint (hi, >=, 0);
      g_assert_cmpint (lo, >=, 0);
      out[i] = (guint8) (hi << 4 | lo);
    }
  return g_bytes_new_take (out, len / 2);
}

static void
assert_bytes_equal (const guint8 *actual,
                    GBytes       *expected)
{
  gsize len;
  const guint8 *data = g_bytes_get_data (expected, &len);

  g_assert_cmpmem (actual, len, data, len);
}

static void
test_known_answers (void)
{
  for (gsize i = 0; i < G_N_ELEMENTS (vectors); i++)
    {
      const GcmVector *v = &vectors[i];
      g_autoptr(GBytes) key = from_hex (v->key);
      g_autoptr(GBytes) iv = from_hex (v->iv);
      g_autoptr(GBytes) aad = from_hex (v->aad);
      g_autoptr(GBytes) plain = from_hex (v->plain);
      g_autoptr(GBytes) cipher = from_hex (v->cipher);
      g_autoptr(GBytes) tag = from_hex (v->tag);
      gsize plain_len = g_bytes_get_size (plain);
      g_autofree guint8 *cipher_out = g_malloc0 (plain_len + 1);
      g_autofree guint8 *plain_out = g_malloc0 (plain_len + 1);
      guint8 tag_out[GK_CRYPTO_TAG_LEN] = { 0 };
      guint8 bad_tag[GK_CRYPTO_TAG_LEN];

      g_test_message ("vector %s", v->name);
      g_assert_cmpuint (g_bytes_get_size (key), ==, 32);
      g_assert_cmpuint (g_bytes_get_size (tag), ==, GK_CRYPTO_TAG_LEN);

      g_assert_true (gk_crypto_aes_gcm_encrypt (g_bytes_get_data (key, NULL),
                                                g_bytes_get_data (iv, NULL),
                                                g_bytes_get_size (iv),
                                                g_bytes_get_data (aad, NULL),
                                                g_bytes_get_size (aad),
                                                g_bytes_get_data (plain, NULL), plain_len,
                                                cipher_out, tag_out));
      assert_bytes_equal (cipher_out, cipher);
      assert_bytes_equal (tag_out, tag);

      g_assert_true (gk_crypto_aes_gcm_decrypt (g_bytes_get_data (key, NULL),
                                                g_bytes_get_data (iv, NULL),
                                                g_bytes_get_size (iv),
                                                g_bytes_get_data (aad, NULL),
                                                g_bytes_get_size (aad),
                                                g_bytes_get_data (cipher, NULL), plain_len,
                                                g_bytes_get_data (tag, NULL),
                                                plain_out));
      assert_bytes_equal (plain_out, plain);

      /* A single flipped tag bit must be refused, and nothing leaked. */
      memcpy (bad_tag, g_bytes_get_data (tag, NULL), sizeof bad_tag);
      bad_tag[GK_CRYPTO_TAG_LEN - 1] ^= 0x01;
      memset (plain_out, 0xaa, plain_len);
      g_assert_false (gk_crypto_aes_gcm_decrypt (g_bytes_get_data (key, NULL),
                                                 g_bytes_get_data (iv, NULL),
                                                 g_bytes_get_size (iv),
                                                 g_bytes_get_data (aad, NULL),
                                                 g_bytes_get_size (aad),
                                                 g_bytes_get_data (cipher, NULL), plain_len,
                                                 bad_tag, plain_out));
      for (gsize j = 0; j < plain_len; j++)
        g_assert_cmpuint (plain_out[j], ==, 0);
    }
}

#define ROW_A "6f1c2a0e-1d1b-4e4f-9a3e-0c2f5a7b8c9d"
#define ROW_B "0d6a2b3c-4e5f-4a1b-8c7d-9e0f1a2b3c4d"
#define SECRET "AIzaSyTest-not-a-real-key-0000000000000"

static GBytes *
test_key (guint8 seed)
{
  guint8 key[GK_MASTER_KEY_LEN];

  for (guint i = 0; i < sizeof key; i++)
    key[i] = (guint8) (seed + i * 13);
  return gk_secure_bytes_new (key, sizeof key);
}

static GBytes *
encrypt_secret (GBytes     *key,
                const char *aad)
{
  g_autoptr(GError) error = NULL;
  GBytes *blob = gk_crypto_encrypt (key, aad, SECRET, strlen (SECRET), &error);

  g_assert_no_error (error);
  g_assert_nonnull (blob);
  return blob;
}

static gboolean
contains (const guint8 *data,
          gsize         len,
          const char   *needle)
{
  gsize needle_len = strlen (needle);

  for (gsize i = 0; i + needle_len <= len; i++)
    if (memcmp (data + i, needle, needle_len) == 0)
      return TRUE;
  return FALSE;
}

static void
test_blob_round_trip (void)
{
  g_autoptr(GBytes) key = test_key (1);
  g_autoptr(GBytes) blob = encrypt_secret (key, ROW_A);
  g_autoptr(GBytes) blob2 = encrypt_secret (key, ROW_A);
  g_autoptr(GBytes) plain = NULL;
  g_autoptr(GError) error = NULL;
  const guint8 *data;
  gsize len;

  data = g_bytes_get_data (blob, &len);
  g_assert_cmpuint (len, ==, 1 + GK_CRYPTO_NONCE_LEN + strlen (SECRET) + GK_CRYPTO_TAG_LEN);
  g_assert_cmpuint (data[0], ==, GK_CRYPTO_VERSION);
  /* The plaintext does not appear in the blob. */
  g_assert_false (contains (data, len, "AIza"));
  /* Nonces are random: the same plaintext gives different blobs. */
  g_assert_false (g_bytes_equal (blob, blob2));

  plain = gk_crypto_decrypt (key, ROW_A, data, len, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (g_bytes_get_size (plain), ==, strlen (SECRET));
  /* NUL-terminated beyond its size, usable as a C string. */
  g_assert_cmpstr (g_bytes_get_data (plain, NULL), ==, SECRET);
}

static void
test_blob_empty_plaintext (void)
{
  g_autoptr(GBytes) key = test_key (2);
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) blob = gk_crypto_encrypt (key, ROW_A, "", 0, &error);
  g_autoptr(GBytes) plain = NULL;

  g_assert_no_error (error);
  g_assert_cmpuint (g_bytes_get_size (blob), ==, 1 + GK_CRYPTO_NONCE_LEN + GK_CRYPTO_TAG_LEN);
  plain = gk_crypto_decrypt (key, ROW_A, g_bytes_get_data (blob, NULL),
                             g_bytes_get_size (blob), &error);
  g_assert_no_error (error);
  g_assert_cmpuint (g_bytes_get_size (plain), ==, 0);
  g_assert_cmpstr (g_bytes_get_data (plain, NULL), ==, "");
}

static void
assert_decrypt_fails (GBytes        *key,
                      const char    *aad,
                      const guint8  *blob,
                      gsize          len,
                      GkCryptoError  code)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) plain = gk_crypto_decrypt (key, aad, blob, len, &error);

  g_assert_error (error, GK_CRYPTO_ERROR, (gint) code);
  g_assert_null (plain);
  /* Messages never quote the secret. */
  g_assert_null (strstr (error->message, "AIza"));
}

static void
test_blob_tamper (void)
{
  g_autoptr(GBytes) key = test_key (3);
  g_autoptr(GBytes) blob = encrypt_secret (key, ROW_A);
  gsize len;
  const guint8 *data = g_bytes_get_data (blob, &len);
  gsize nonce_at = 1;
  gsize cipher_at = 1 + GK_CRYPTO_NONCE_LEN;
  gsize tag_at = len - GK_CRYPTO_TAG_LEN;

  /* Every byte of every region, each flipped on its own. */
  for (gsize i = 0; i < len; i++)
    {
      g_autofree guint8 *copy = g_memdup2 (data, len);
      GkCryptoError expected = i == 0 ? GK_CRYPTO_ERROR_FORMAT : GK_CRYPTO_ERROR_AUTH;

      copy[i] ^= (i == 0) ? 0x02 : 0x80;
      assert_decrypt_fails (key, ROW_A, copy, len, expected);
    }

  g_assert_cmpuint (nonce_at, <, cipher_at);
  g_assert_cmpuint (cipher_at, <, tag_at);

  /* Appending a byte shifts the tag. */
  {
    g_autofree guint8 *longer = g_malloc (len + 1);

    memcpy (longer, data, len);
    longer[len] = 0;
    assert_decrypt_fails (key, ROW_A, longer, len + 1, GK_CRYPTO_ERROR_AUTH);
  }
}

static void
test_blob_aad_swap (void)
{
  g_autoptr(GBytes) key = test_key (4);
  g_autoptr(GBytes) blob = encrypt_secret (key, ROW_A);
  gsize len;
  const guint8 *data = g_bytes_get_data (blob, &len);

  assert_decrypt_fails (key, ROW_B, data, len, GK_CRYPTO_ERROR_AUTH);
  assert_decrypt_fails (key, NULL, data, len, GK_CRYPTO_ERROR_AUTH);
  assert_decrypt_fails (key, "", data, len, GK_CRYPTO_ERROR_AUTH);
}

static void
test_blob_wrong_key (void)
{
  g_autoptr(GBytes) key = test_key (5);
  g_autoptr(GBytes) other = test_key (6);
  g_autoptr(GBytes) blob = encrypt_secret (key, ROW_A);
  g_autoptr(GBytes) short_key = gk_secure_bytes_new ("short", 5);
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) plain = NULL;
  gsize len;
  const guint8 *data = g_bytes_get_data (blob, &len);

  assert_decrypt_fails (other, ROW_A, data, len, GK_CRYPTO_ERROR_AUTH);

  plain = gk_crypto_decrypt (short_key, ROW_A, data, len, &error);
  g_assert_error (error, GK_CRYPTO_ERROR, GK_CRYPTO_ERROR_FAILED);
  g_assert_null (plain);
}

static void
test_blob_truncated (void)
{
  g_autoptr(GBytes) key = test_key (7);
  g_autoptr(GBytes) blob = encrypt_secret (key, ROW_A);
  gsize len;
  const guint8 *data = g_bytes_get_data (blob, &len);
  static const guint8 unknown_version[1 + GK_CRYPTO_NONCE_LEN + GK_CRYPTO_TAG_LEN] = { 2 };

  assert_decrypt_fails (key, ROW_A, NULL, 0, GK_CRYPTO_ERROR_FORMAT);
  for (gsize cut = 0; cut < 1 + GK_CRYPTO_NONCE_LEN + GK_CRYPTO_TAG_LEN; cut++)
    assert_decrypt_fails (key, ROW_A, data, cut, GK_CRYPTO_ERROR_FORMAT);
  /* Long enough for the format but with bytes missing: the tag fails. */
  for (gsize cut = 1 + GK_CRYPTO_NONCE_LEN + GK_CRYPTO_TAG_LEN; cut < len; cut++)
    assert_decrypt_fails (key, ROW_A, data, cut, GK_CRYPTO_ERROR_AUTH);
  assert_decrypt_fails (key, ROW_A, unknown_version, sizeof unknown_version,
                        GK_CRYPTO_ERROR_FORMAT);
}

static void
test_fingerprint (void)
{
  g_autoptr(GBytes) key = test_key (8);
  g_autoptr(GBytes) other = test_key (9);
  g_autofree char *fp1 = gk_crypto_fingerprint (key, SECRET);
  g_autofree char *fp2 = gk_crypto_fingerprint (key, SECRET);
  g_autofree char *fp_other_text = gk_crypto_fingerprint (key, SECRET "x");
  g_autofree char *fp_other_key = gk_crypto_fingerprint (other, SECRET);
  g_autofree char *check = gk_crypto_check_value (key);
  g_autofree char *check2 = gk_crypto_check_value (key);
  g_autofree char *check_other = gk_crypto_check_value (other);
  g_autofree char *plain_sha = gk_crypto_sha256_hex (SECRET);

  g_assert_cmpuint (strlen (fp1), ==, 64);
  for (const char *p = fp1; *p; p++)
    g_assert_true (g_ascii_isxdigit (*p) && !g_ascii_isupper (*p));
  g_assert_cmpstr (fp1, ==, fp2);
  g_assert_cmpstr (fp1, !=, fp_other_text);
  g_assert_cmpstr (fp1, !=, fp_other_key);
  /* Keyed: not a plain hash of the key, so it cannot be checked offline. */
  g_assert_cmpstr (fp1, !=, plain_sha);

  g_assert_nonnull (check);
  g_assert_cmpstr (check, ==, check2);
  g_assert_cmpstr (check, !=, check_other);
  /* The check value and the fingerprint use separate derived keys. */
  g_assert_cmpstr (check, !=, fp1);
}

static void
test_sha256 (void)
{
  g_autofree char *empty = gk_crypto_sha256_hex ("");
  g_autofree char *abc = gk_crypto_sha256_hex ("abc");

  /* FIPS 180-2 examples. */
  g_assert_cmpstr (empty, ==, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  g_assert_cmpstr (abc, ==, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

static void
test_equal_const_time (void)
{
  g_assert_true (gk_crypto_equal_const_time ("abc", "abc"));
  g_assert_true (gk_crypto_equal_const_time ("", ""));
  g_assert_false (gk_crypto_equal_const_time ("abc", "abd"));
  g_assert_false (gk_crypto_equal_const_time ("abc", "ab"));
  g_assert_false (gk_crypto_equal_const_time ("ab", "abc"));
  g_assert_false (gk_crypto_equal_const_time ("abc", NULL));
  g_assert_false (gk_crypto_equal_const_time (NULL, "abc"));
  g_assert_false (gk_crypto_equal_const_time (NULL, NULL));
}

static void
test_secure_bytes (void)
{
  g_autoptr(GBytes) copy = gk_secure_bytes_new ("secret", 6);
  g_autoptr(GBytes) taken = gk_secure_bytes_new_take (g_strdup ("taken"), 5);
  g_autoptr(GBytes) master = gk_crypto_new_master_key ();
  g_autoptr(GBytes) master2 = gk_crypto_new_master_key ();
  char *str = g_strdup ("wipe me");
  char buf[4] = { 1, 2, 3, 4 };

  g_assert_cmpmem (g_bytes_get_data (copy, NULL), g_bytes_get_size (copy), "secret", 6);
  g_assert_cmpmem (g_bytes_get_data (taken, NULL), g_bytes_get_size (taken), "taken", 5);
  g_assert_cmpuint (g_bytes_get_size (master), ==, GK_MASTER_KEY_LEN);
  g_assert_false (g_bytes_equal (master, master2));

  gk_crypto_wipe (buf, sizeof buf);
  for (gsize i = 0; i < sizeof buf; i++)
    g_assert_cmpint (buf[i], ==, 0);
  gk_crypto_wipe (NULL, 0);
  gk_crypto_wipe_string (str);
  gk_crypto_wipe_string (NULL);
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);

  g_test_add_func ("/crypto/aes-gcm/known-answers", test_known_answers);
  g_test_add_func ("/crypto/blob/round-trip", test_blob_round_trip);
  g_test_add_func ("/crypto/blob/empty", test_blob_empty_plaintext);
  g_test_add_func ("/crypto/blob/tamper", test_blob_tamper);
  g_test_add_func ("/crypto/blob/aad-swap", test_blob_aad_swap);
  g_test_add_func ("/crypto/blob/wrong-key", test_blob_wrong_key);
  g_test_add_func ("/crypto/blob/truncated", test_blob_truncated);
  g_test_add_func ("/crypto/fingerprint", test_fingerprint);
  g_test_add_func ("/crypto/sha256", test_sha256);
  g_test_add_func ("/crypto/equal-const-time", test_equal_const_time);
  g_test_add_func ("/crypto/secure-bytes", test_secure_bytes);

  return g_test_run ();
}
