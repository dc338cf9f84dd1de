/* gk-core.h: the core engine (no GTK).
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#pragma once

#include "gk-types.h"
#include "gk-alerts.h"
#include "gk-audit.h"
#include "gk-clock.h"
#include "gk-crypto.h"
#include "gk-database.h"
#include "gk-export.h"
#include "gk-hardening.h"
#include "gk-hygiene.h"
#include "gk-i18n.h"
#include "gk-insights.h"
#include "gk-json.h"
#include "gk-key-import.h"
#include "gk-key-state.h"
#include "gk-key-store.h"
#include "gk-outcome.h"
#include "gk-pool.h"
#include "gk-pricing.h"
#include "gk-quotas.h"
#include "gk-rollup.h"
#include "gk-secret-store.h"
#include "gk-spend.h"
#include "gk-stats.h"
#include "gk-team-database.h"
#include "gk-token-store.h"
