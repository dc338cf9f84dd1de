/* gk-unlock-page.c
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "config.h"

#include <glib/gi18n.h>

#include "gk-core.h"
#include "gk-page-load.h"
#include "gk-unlock-page.h"

struct _GkUnlockPage
{
  AdwBin                parent_instance;

  GtkFileChooserNative *chooser;

  AdwStatusPage        *status_page;
  GtkWidget            *retry_button;
  GtkWidget            *import_button;
  GtkWidget            *use_local_button;
  GtkWidget            *detail_label;
};

G_DEFINE_FINAL_TYPE (GkUnlockPage, gk_unlock_page, ADW_TYPE_BIN)

enum {
  RETRY,
  IMPORT_FILE,
  USE_LOCAL_FILE,
  N_SIGNALS
};

static guint signals[N_SIGNALS];

static void
chooser_response_cb (GkUnlockPage         *self,
                     int                   response,
                     GtkFileChooserNative *chooser)
{
  if (response == GTK_RESPONSE_ACCEPT)
    {
      g_autoptr(GFile) file = gtk_file_chooser_get_file (GTK_FILE_CHOOSER (chooser));

      if (file != NULL)
        g_signal_emit (self, signals[IMPORT_FILE], 0, file);
    }

  g_clear_object (&self->chooser);
}

static void
import_action_cb (GtkWidget  *widget,
                  const char *action_name,
                  GVariant   *parameter)
{
  GkUnlockPage *self = GK_UNLOCK_PAGE (widget);
  GtkRoot *root = gtk_widget_get_root (widget);

  if (self->chooser != NULL)
    return;

  self->chooser = gtk_file_chooser_native_new (_("Import Master Key File"),
                                               GTK_IS_WINDOW (root) ? GTK_WINDOW (root) : NULL,
                                               GTK_FILE_CHOOSER_ACTION_OPEN,
                                               _("_Import"),
                                               _("_Cancel"));
  gtk_native_dialog_set_modal (GTK_NATIVE_DIALOG (self->chooser), TRUE);
  g_signal_connect_object (self->chooser, "response", G_CALLBACK (chooser_response_cb), self,
                           G_CONNECT_SWAPPED);
  gtk_native_dialog_show (GTK_NATIVE_DIALOG (self->chooser));
}

static void
retry_action_cb (GtkWidget  *widget,
                 const char *action_name,
                 GVariant   *parameter)
{
  g_signal_emit (widget, signals[RETRY], 0);
}

static void
use_local_action_cb (GtkWidget  *widget,
                     const char *action_name,
                     GVariant   *parameter)
{
  g_signal_emit (widget, signals[USE_LOCAL_FILE], 0);
}

static void
gk_unlock_page_dispose (GObject *object)
{
  GkUnlockPage *self = GK_UNLOCK_PAGE (object);

  if (self->chooser != NULL)
    gtk_native_dialog_destroy (GTK_NATIVE_DIALOG (self->chooser));
  g_clear_object (&self->chooser);
  gk_page_dispose_template (ADW_BIN (self), GK_TYPE_UNLOCK_PAGE);

  G_OBJECT_CLASS (gk_unlock_page_parent_class)->dispose (object);
}

static void
gk_unlock_page_class_init (GkUnlockPageClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);

  object_class->dispose = gk_unlock_page_dispose;

  /**
   * GkUnlockPage::retry:
   *
   * The user asks to try unlocking again.
   */
  signals[RETRY] =
    g_signal_new ("retry",
                  G_TYPE_FROM_CLASS (klass),
                  G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL,
                  G_TYPE_NONE, 0);

  /**
   * GkUnlockPage::import-file:
   * @file: the master key file the user chose
   */
  signals[IMPORT_FILE] =
    g_signal_new ("import-file",
                  G_TYPE_FROM_CLASS (klass),
                  G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL,
                  G_TYPE_NONE, 1, G_TYPE_FILE);

  /**
   * GkUnlockPage::use-local-file:
   *
   * The team database cannot be used: the user asks for this computer's
   * database file instead.
   */
  signals[USE_LOCAL_FILE] =
    g_signal_new ("use-local-file",
                  G_TYPE_FROM_CLASS (klass),
                  G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL,
                  G_TYPE_NONE, 0);

  gtk_widget_class_set_template_from_resource (widget_class,
                                               "/io/github/geminikeys/GeminiKeys/ui/gk-unlock-page.ui");
  gtk_widget_class_bind_template_child (widget_class, GkUnlockPage, status_page);
  gtk_widget_class_bind_template_child (widget_class, GkUnlockPage, retry_button);
  gtk_widget_class_bind_template_child (widget_class, GkUnlockPage, import_button);
  gtk_widget_class_bind_template_child (widget_class, GkUnlockPage, use_local_button);
  gtk_widget_class_bind_template_child (widget_class, GkUnlockPage, detail_label);

  gtk_widget_class_install_action (widget_class, "unlock.retry", NULL, retry_action_cb);
  gtk_widget_class_install_action (widget_class, "unlock.import", NULL, import_action_cb);
  gtk_widget_class_install_action (widget_class, "unlock.use-local", NULL, use_local_action_cb);
}

static void
gk_unlock_page_init (GkUnlockPage *self)
{
  gtk_widget_init_template (GTK_WIDGET (self));
}

GtkWidget *
gk_unlock_page_new (void)
{
  return g_object_new (GK_TYPE_UNLOCK_PAGE, NULL);
}

void
gk_unlock_page_set_error (GkUnlockPage *self,
                          const GError *error)
{
  const char *title = _("Cannot Unlock the Keys");
  const char *description = NULL;
  const char *icon = "dialog-password-symbolic";
  gboolean can_import = TRUE;

  g_return_if_fail (GK_IS_UNLOCK_PAGE (self));
  g_return_if_fail (error != NULL);

  if (error->domain == GK_SECRET_ERROR)
    {
      switch ((GkSecretError) error->code)
        {
        case GK_SECRET_ERROR_LOCKED:
          title = _("Keyring Locked");
          description = _("The keyring holding the master key is locked, so your API keys cannot "
                          "be decrypted. Unlock it when asked (or in Passwords and Keys) and "
                          "press Retry.");
          break;

        case GK_SECRET_ERROR_NO_SERVICE:
          title = _("No Keyring Available");
          description = _("No Secret Service (such as GNOME Keyring) is running, so the master "
                          "key cannot be read. Start one and press Retry, or import the master "
                          "key file made with “gemini-keysctl master-key export”.");
          break;

        case GK_SECRET_ERROR_MISSING:
          title = _("Master Key Missing");
          description = _("This database holds encrypted keys, but the keyring has no master key "
                          "for it. Nothing was changed. Import the master key file you exported "
                          "earlier; without it the stored keys cannot be decrypted.");
          break;

        case GK_SECRET_ERROR_WRONG_KEY:
          title = _("Wrong Master Key");
          description = _("The master key found does not match this database. Nothing was "
                          "changed. Import the master key file that belongs to it.");
          break;

        case GK_SECRET_ERROR_FILE:
          title = _("Master Key File Unreadable");
          description = _("The file named by GEMINI_KEYS_MASTER_KEY_FILE cannot be used. Check "
                          "that it exists, is readable only by you (mode 0600) and holds the "
                          "key, then press Retry.");
          break;

        case GK_SECRET_ERROR_DISMISSED:
          title = _("Keyring Prompt Dismissed");
          description = _("The keyring asked for a password to keep the master key in, and the "
                          "prompt was closed. Press Retry and answer it, or import the master "
                          "key file made with “gemini-keysctl master-key export”.");
          break;

        case GK_SECRET_ERROR_FAILED:
        default:
          description = _("The master key could not be read. Press Retry, or import the master "
                          "key file.");
          break;
        }
    }
  else if (error->domain == GK_TEAM_DATABASE_ERROR)
    {
      icon = "network-offline-symbolic";
      can_import = FALSE;
      switch ((GkTeamDatabaseError) error->code)
        {
        case GK_TEAM_DATABASE_ERROR_PASSWORD:
          title = _("The Team Database Refused the Password");
          description = _("Nothing is shown until it lets Gemini Keys in. Use the local file, "
                          "then type the new password in Preferences → Team Pool and connect "
                          "again.");
          break;

        default:
          title = _("The Team Database Cannot Be Reached");
          description = _("Nothing is shown until it can be. Press Retry, or use this "
                          "computer’s own database file until Gemini Keys is restarted.");
          break;
        }
    }
  else if (error->domain == GK_DATABASE_ERROR)
    {
      icon = "dialog-error-symbolic";
      can_import = FALSE;
      switch ((GkDatabaseError) error->code)
        {
        case GK_DATABASE_ERROR_TOO_NEW:
          title = _("Database From a Newer Version");
          description = _("The database was written by a newer Gemini Keys. Update the app to "
                          "open it.");
          break;

        case GK_DATABASE_ERROR_CORRUPT:
          title = _("Database Damaged");
          description = _("The database file is damaged. Restore it from a backup; nothing was "
                          "changed.");
          break;

        case GK_DATABASE_ERROR_BUSY:
          title = _("Database Busy");
          description = _("Another program holds the database locked. Press Retry in a moment.");
          break;

        default:
          title = _("Cannot Open the Database");
          description = _("Check that the data folder exists and can be written, then press "
                          "Retry.");
          break;
        }
    }
  else
    description = _("Press Retry, or import the master key file.");

  adw_status_page_set_icon_name (self->status_page, icon);
  adw_status_page_set_title (self->status_page, title);
  adw_status_page_set_description (self->status_page, description);
  gtk_label_set_text (GTK_LABEL (self->detail_label), error->message);
  gtk_widget_set_visible (self->import_button, can_import);
}

void
gk_unlock_page_set_team (GkUnlockPage *self,
                         gboolean      team)
{
  g_return_if_fail (GK_IS_UNLOCK_PAGE (self));

  gtk_widget_set_visible (self->use_local_button, team);
}

const char *
gk_unlock_page_get_title (GkUnlockPage *self)
{
  g_return_val_if_fail (GK_IS_UNLOCK_PAGE (self), NULL);

  return adw_status_page_get_title (self->status_page);
}

void
gk_unlock_page_set_busy (GkUnlockPage *self,
                         gboolean      busy)
{
  g_return_if_fail (GK_IS_UNLOCK_PAGE (self));

  gtk_widget_action_set_enabled (GTK_WIDGET (self), "unlock.retry", !busy);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "unlock.import", !busy);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "unlock.use-local", !busy);
}
