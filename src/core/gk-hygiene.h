/* gk-hygiene.h: keys worth deleting, and the master key's age.
 *
 * A key not used for the "unused key" number of days (a setting, default
 * 30; a key never used counts from when it was added) and a key Google
 * rejected are listed as worth deleting. The master key should be rotated
 * every GK_MASTER_KEY_MAX_AGE_DAYS days; its creation time is kept in the
 * database's meta table from this version on. A database that does not
 * know it (made by an older version) is dated by its oldest key, which the
 * master key cannot be older than… but may be younger than, if it was
 * rotated: the age shown is then a most, and says so.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#pragma once

#include <gio/gio.h>

#include "gk-types.h"

G_BEGIN_DECLS

#define GK_SETTING_UNUSED_KEY_DAYS   "unused_key_days"     /* default "30" */
#define GK_DEFAULT_UNUSED_KEY_DAYS   30
#define GK_MASTER_KEY_MAX_AGE_DAYS   180
#define GK_META_MASTER_KEY_CREATED   "master_key_created_at"

typedef enum
{
  GK_STALE_UNUSED,    /* not used for the setting's number of days */
  GK_STALE_REJECTED,  /* Google rejected it (INVALID) */
} GkStaleReason;

typedef struct
{
  gint64        key_id;
  char         *name;
  GkStaleReason reason;
  gint64        last_used_at;  /* 0 = never */
  gint64        idle_days;     /* days since its last use (or since it was added) */
} GkStaleKey;

typedef struct
{
  gint64   created_at;   /* 0 = unknown (no record and no key) */
  gboolean estimated;    /* dated by the oldest key: the key is at most this old */
  gint64   age_days;
  gboolean rotate_due;   /* older than GK_MASTER_KEY_MAX_AGE_DAYS */
} GkMasterKeyAge;

void        gk_stale_key_free           (GkStaleKey  *key);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (GkStaleKey, gk_stale_key_free)

/* The unused-key setting in days (1 to 3650). */
guint       gk_hygiene_get_unused_days  (GkDatabase  *db);
gboolean    gk_hygiene_set_unused_days  (GkDatabase  *db,
                                         guint        days,
                                         GError     **error);
/* Keys worth deleting, rejected ones first, then the longest unused.
 * Element type GkStaleKey. */
GPtrArray  *gk_hygiene_stale_keys       (GkDatabase  *db,
                                         GError     **error);
/* Translated: "Not used for 45 days", "Never used, added 40 days ago",
 * "Rejected by Google". */
char       *gk_stale_key_describe       (const GkStaleKey *key);
gboolean    gk_hygiene_master_key_age   (GkDatabase      *db,
                                         GkMasterKeyAge  *age,
                                         GError         **error);
/* Records now as the master key's creation time (called where a master
 * key is made: first run, rotation, import into an empty database). */
gboolean    gk_hygiene_mark_master_key_created (GkDatabase  *db,
                                                GError     **error);

G_END_DECLS
