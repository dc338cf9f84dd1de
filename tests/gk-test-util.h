/* gk-test-util.h: fixtures shared by the GTest programs.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#pragma once

#include "gk-core.h"

G_BEGIN_DECLS

/* 2026-03-15 12:00:00 UTC: a plain day, not near a DST change or month end. */
#define GK_TEST_EPOCH G_GINT64_CONSTANT (1773576000)

/* A fresh path for a database in a new temporary directory. */
char       *gk_test_db_path        (void);
/* A migrated database at a fresh path on @clock (NULL: a fixed clock at
 * GK_TEST_EPOCH). */
GkDatabase *gk_test_open_db        (GkClock    *clock);
/* A constant master key (secure bytes) for tests that do not need the
 * keyring. */
GBytes     *gk_test_master_key     (void);
/* A valid-looking classic key, distinct for each @n. */
char       *gk_test_api_key        (guint       n);
/* Adds a key named @name with @priority and no quotas; returns its id. */
gint64      gk_test_add_key        (GkKeyStore *store,
                                    const char *name,
                                    int         priority);
/* Removes a directory tree (test clean-up). */
void        gk_test_rm_rf          (const char *path);

G_END_DECLS
