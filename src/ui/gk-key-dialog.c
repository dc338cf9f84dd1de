/* gk-key-dialog.c
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "config.h"

#include <glib/gi18n.h>

#include "gk-key-dialog.h"

struct _GkKeyDialog
{
  AdwWindow       parent_instance;

  GkBackend      *backend;
  GkKey          *key;           /* NULL when adding */
  GCancellable   *cancellable;
  gboolean        saving;
  gboolean        name_touched;
  gboolean        key_touched;

  AdwWindowTitle *window_title;
  GtkWidget      *save_button;
  GtkWidget      *error_label;
  GtkWidget      *name_row;
  GtkWidget      *name_error;
  GtkWidget      *key_row;
  GtkWidget      *key_error;
  GtkWidget      *key_hint;
  GtkWidget      *project_row;
  GtkWidget      *priority_spin;
  GtkWidget      *default_switch;
  GtkWidget      *active_switch;
  GtkWidget      *monthly_spin;
  GtkWidget      *quota_rows[GK_QUOTA_N_SLOTS];
  GtkWidget      *daily_spin;
  GtkWidget      *minute_spin;
  GtkWidget      *rpd_spin;
  GtkWidget      *rpm_spin;
  GtkWidget      *budget_spin;
};

G_DEFINE_FINAL_TYPE (GkKeyDialog, gk_key_dialog, ADW_TYPE_WINDOW)

enum {
  SAVED,
  N_SIGNALS
};

static guint signals[N_SIGNALS];

/* What the worker thread needs: a snapshot of the form, owning its strings
 * (the widgets must not be touched off the main thread). */
typedef struct
{
  gint64     id;            /* 0 = add */
  char      *name;
  char      *project;
  char      *api_key;       /* wiped when freed; NULL = keep */
  GkKeySpec  spec;
} SaveData;

static void
save_data_free (SaveData *data)
{
  g_free (data->name);
  g_free (data->project);
  gk_crypto_wipe_string (data->api_key);
  g_free (data);
}

static gint64
spin_value (GtkWidget *spin)
{
  return (gint64) gtk_spin_button_get_value (GTK_SPIN_BUTTON (spin));
}

static void
read_spec (GkKeyDialog *self,
           GkKeySpec   *spec)
{
  double budget;

  gk_key_spec_init (spec);
  spec->name = gtk_editable_get_text (GTK_EDITABLE (self->name_row));
  spec->project = gtk_editable_get_text (GTK_EDITABLE (self->project_row));
  spec->priority = gtk_spin_button_get_value_as_int (GTK_SPIN_BUTTON (self->priority_spin));
  spec->is_default = gtk_switch_get_active (GTK_SWITCH (self->default_switch));
  spec->active = gtk_switch_get_active (GTK_SWITCH (self->active_switch));
  spec->limits[GK_QUOTA_SLOT_MONTHLY_TOKENS] = spin_value (self->monthly_spin);
  spec->limits[GK_QUOTA_SLOT_DAILY_TOKENS] = spin_value (self->daily_spin);
  spec->limits[GK_QUOTA_SLOT_MINUTE_TOKENS] = spin_value (self->minute_spin);
  spec->limits[GK_QUOTA_SLOT_DAILY_REQUESTS] = spin_value (self->rpd_spin);
  spec->limits[GK_QUOTA_SLOT_MINUTE_REQUESTS] = spin_value (self->rpm_spin);
  budget = gtk_spin_button_get_value (GTK_SPIN_BUTTON (self->budget_spin));
  spec->monthly_budget_usd = budget > 0.0 ? budget : -1.0;
}

/* Shows @message under @row (NULL hides it) and marks the row. */
static void
set_field_error (GtkWidget  *row,
                 GtkWidget  *label,
                 const char *message)
{
  gtk_label_set_text (GTK_LABEL (label), message != NULL ? message : "");
  gtk_widget_set_visible (label, message != NULL);
  if (message != NULL)
    gtk_widget_add_css_class (row, "error");
  else
    gtk_widget_remove_css_class (row, "error");
}

static void
set_general_error (GkKeyDialog *self,
                   const char  *message)
{
  gtk_label_set_text (GTK_LABEL (self->error_label), message != NULL ? message : "");
  gtk_widget_set_visible (self->error_label, message != NULL);
}

/* Checks the whole form. A field's error shows once the user has left the
 * field or tried to save, never while they type in it; Save stays disabled
 * while anything is invalid. */
static gboolean
validate (GkKeyDialog *self)
{
  g_autoptr(GError) name_error = NULL;
  g_autoptr(GError) key_error = NULL;
  g_autoptr(GError) spec_error = NULL;
  const char *api_key;
  GkKeySpec spec;
  gboolean valid = TRUE;

  read_spec (self, &spec);

  if (!gk_key_validate_name (spec.name, &name_error))
    valid = FALSE;
  set_field_error (self->name_row, self->name_error,
                   self->name_touched && name_error != NULL ? name_error->message : NULL);

  api_key = gtk_editable_get_text (GTK_EDITABLE (self->key_row));
  /* Editing: an empty key field keeps the stored key. */
  if ((self->key == NULL || api_key[0] != '\0') &&
      !gk_key_validate_api_key (api_key, &key_error))
    valid = FALSE;
  set_field_error (self->key_row, self->key_error,
                   self->key_touched && key_error != NULL ? key_error->message : NULL);

  if (name_error == NULL && !gk_key_validate_spec (&spec, &spec_error))
    valid = FALSE;
  set_general_error (self, spec_error != NULL ? spec_error->message : NULL);

  gtk_widget_set_sensitive (self->save_button, valid && !self->saving);

  return valid;
}

static void
validate_cb (GkKeyDialog *self)
{
  validate (self);
}

/* Typing hides the field's error until the user leaves the field. */
static void
name_changed_cb (GkKeyDialog *self)
{
  self->name_touched = FALSE;
  validate (self);
}

static void
key_changed_cb (GkKeyDialog *self)
{
  self->key_touched = FALSE;
  validate (self);
}

static void
name_left_cb (GkKeyDialog *self)
{
  /* Focus also leaves while the window is torn down. */
  if (self->name_row == NULL || gtk_widget_in_destruction (GTK_WIDGET (self)))
    return;
  /* Leaving an empty new form untouched is not a mistake yet. */
  if (gtk_editable_get_text (GTK_EDITABLE (self->name_row))[0] == '\0' && self->key == NULL)
    return;
  self->name_touched = TRUE;
  validate (self);
}

static void
key_left_cb (GkKeyDialog *self)
{
  if (self->key_row == NULL || gtk_widget_in_destruction (GTK_WIDGET (self)))
    return;
  if (gtk_editable_get_text (GTK_EDITABLE (self->key_row))[0] == '\0')
    return;
  self->key_touched = TRUE;
  validate (self);
}

static void
watch_focus_leave (GtkWidget *row,
                   GCallback  callback,
                   gpointer   user_data)
{
  GtkEventController *focus = gtk_event_controller_focus_new ();

  g_signal_connect_swapped (focus, "leave", callback, user_data);
  gtk_widget_add_controller (row, focus);
}

static gpointer
save_job (const GkBackendRefs  *refs,
          gpointer              user_data,
          GError              **error)
{
  SaveData *data = user_data;
  GkKeyStore *store = refs->key_store;
  gint64 *id;

  if (data->id == 0)
    {
      gint64 new_id = gk_key_store_add (store, &data->spec, data->api_key, error);

      if (new_id == 0)
        return NULL;
      id = g_new (gint64, 1);
      *id = new_id;
      return id;
    }

  if (!gk_key_store_update (store, data->id, &data->spec, data->api_key, error))
    return NULL;

  id = g_new (gint64, 1);
  *id = data->id;
  return id;
}

static void
save_done_cb (GObject      *object,
              GAsyncResult *result,
              gpointer      user_data)
{
  g_autoptr(GkKeyDialog) self = user_data;
  g_autoptr(GError) error = NULL;
  g_autofree gint64 *id = NULL;

  id = gk_backend_run_finish (GK_BACKEND (object), result, &error);
  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    return;

  self->saving = FALSE;

  if (id == NULL)
    {
      if (g_error_matches (error, GK_KEY_STORE_ERROR, GK_KEY_STORE_ERROR_DUPLICATE) ||
          g_error_matches (error, GK_KEY_STORE_ERROR, GK_KEY_STORE_ERROR_INVALID_KEY))
        {
          /* Focus first: leaving another field re-validates the form. */
          gtk_widget_grab_focus (self->key_row);
          set_field_error (self->key_row, self->key_error, error->message);
        }
      else if (g_error_matches (error, GK_KEY_STORE_ERROR, GK_KEY_STORE_ERROR_INVALID_NAME))
        set_field_error (self->name_row, self->name_error, error->message);
      else
        set_general_error (self, error->message);

      /* Save stays off until the user changes something. */
      gtk_widget_set_sensitive (self->save_button, FALSE);
      return;
    }

  /* Drop the plaintext from the entry buffer before the window goes. */
  gtk_editable_set_text (GTK_EDITABLE (self->key_row), "");

  gk_backend_notify_changed (self->backend);
  g_signal_emit (self, signals[SAVED], 0, *id);
  gtk_window_destroy (GTK_WINDOW (self));
}

static void
save_clicked_cb (GkKeyDialog *self)
{
  SaveData *data;
  const char *api_key;

  self->name_touched = TRUE;
  self->key_touched = TRUE;
  if (self->saving || !validate (self))
    return;

  data = g_new0 (SaveData, 1);
  read_spec (self, &data->spec);
  data->id = self->key != NULL ? self->key->id : 0;
  data->name = g_strdup (data->spec.name);
  data->project = g_strdup (data->spec.project);
  data->spec.name = data->name;
  data->spec.project = data->project[0] != '\0' ? data->project : NULL;
  api_key = gtk_editable_get_text (GTK_EDITABLE (self->key_row));
  data->api_key = api_key[0] != '\0' ? g_strdup (api_key) : NULL;

  self->saving = TRUE;
  gtk_widget_set_sensitive (self->save_button, FALSE);
  set_general_error (self, NULL);

  gk_backend_run_async (self->backend, save_job, data, (GDestroyNotify) save_data_free, g_free,
                        self->cancellable, save_done_cb, g_object_ref (self));
}

/* Enter in a field saves when the form is valid, or shows what to fix. */
static void
entry_activated_cb (GkKeyDialog *self)
{
  save_clicked_cb (self);
}

static void
fill_from_key (GkKeyDialog *self)
{
  const GkKey *key = self->key;

  gtk_editable_set_text (GTK_EDITABLE (self->name_row), key->name);
  gtk_editable_set_text (GTK_EDITABLE (self->project_row), key->project != NULL ? key->project : "");
  gtk_spin_button_set_value (GTK_SPIN_BUTTON (self->priority_spin), key->priority);
  gtk_switch_set_active (GTK_SWITCH (self->default_switch), key->is_default);
  gtk_switch_set_active (GTK_SWITCH (self->active_switch), key->status != GK_KEY_STATUS_INACTIVE);
  gtk_spin_button_set_value (GTK_SPIN_BUTTON (self->monthly_spin),
                             key->quotas[GK_QUOTA_SLOT_MONTHLY_TOKENS].limit_value);
  gtk_spin_button_set_value (GTK_SPIN_BUTTON (self->daily_spin),
                             key->quotas[GK_QUOTA_SLOT_DAILY_TOKENS].limit_value);
  gtk_spin_button_set_value (GTK_SPIN_BUTTON (self->minute_spin),
                             key->quotas[GK_QUOTA_SLOT_MINUTE_TOKENS].limit_value);
  gtk_spin_button_set_value (GTK_SPIN_BUTTON (self->rpd_spin),
                             key->quotas[GK_QUOTA_SLOT_DAILY_REQUESTS].limit_value);
  gtk_spin_button_set_value (GTK_SPIN_BUTTON (self->rpm_spin),
                             key->quotas[GK_QUOTA_SLOT_MINUTE_REQUESTS].limit_value);
  gtk_spin_button_set_value (GTK_SPIN_BUTTON (self->budget_spin),
                             MAX (key->monthly_budget_usd, 0.0));
}

/* A job's callback may keep this window alive after its parent is gone;
 * it must not point at the dead parent then. */
static void
parent_destroyed_cb (GkKeyDialog *self)
{
  gtk_window_set_transient_for (GTK_WINDOW (self), NULL);
  gtk_window_destroy (GTK_WINDOW (self));
}

static void
gk_key_dialog_dispose (GObject *object)
{
  GkKeyDialog *self = GK_KEY_DIALOG (object);

  g_cancellable_cancel (self->cancellable);
  gtk_widget_dispose_template (GTK_WIDGET (self), GK_TYPE_KEY_DIALOG);
  g_clear_object (&self->backend);

  G_OBJECT_CLASS (gk_key_dialog_parent_class)->dispose (object);
}

static void
gk_key_dialog_finalize (GObject *object)
{
  GkKeyDialog *self = GK_KEY_DIALOG (object);

  g_clear_pointer (&self->key, gk_key_free);
  g_clear_object (&self->cancellable);

  G_OBJECT_CLASS (gk_key_dialog_parent_class)->finalize (object);
}

static void
gk_key_dialog_class_init (GkKeyDialogClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);

  object_class->dispose = gk_key_dialog_dispose;
  object_class->finalize = gk_key_dialog_finalize;

  /**
   * GkKeyDialog::saved:
   * @id: the key's id
   *
   * The key was added or updated.
   */
  signals[SAVED] =
    g_signal_new ("saved",
                  G_TYPE_FROM_CLASS (klass),
                  G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL,
                  G_TYPE_NONE, 1, G_TYPE_INT64);

  gtk_widget_class_set_template_from_resource (widget_class,
                                               "/io/github/geminikeys/GeminiKeys/ui/gk-key-dialog.ui");
  gtk_widget_class_bind_template_child (widget_class, GkKeyDialog, window_title);
  gtk_widget_class_bind_template_child (widget_class, GkKeyDialog, save_button);
  gtk_widget_class_bind_template_child (widget_class, GkKeyDialog, error_label);
  gtk_widget_class_bind_template_child (widget_class, GkKeyDialog, name_row);
  gtk_widget_class_bind_template_child (widget_class, GkKeyDialog, name_error);
  gtk_widget_class_bind_template_child (widget_class, GkKeyDialog, key_row);
  gtk_widget_class_bind_template_child (widget_class, GkKeyDialog, key_error);
  gtk_widget_class_bind_template_child (widget_class, GkKeyDialog, key_hint);
  gtk_widget_class_bind_template_child (widget_class, GkKeyDialog, project_row);
  gtk_widget_class_bind_template_child (widget_class, GkKeyDialog, priority_spin);
  gtk_widget_class_bind_template_child (widget_class, GkKeyDialog, default_switch);
  gtk_widget_class_bind_template_child (widget_class, GkKeyDialog, active_switch);
  gtk_widget_class_bind_template_child (widget_class, GkKeyDialog, monthly_spin);
  gtk_widget_class_bind_template_child_full (widget_class, "monthly_row", FALSE,
                                             G_STRUCT_OFFSET (GkKeyDialog, quota_rows[GK_QUOTA_SLOT_MONTHLY_TOKENS]));
  gtk_widget_class_bind_template_child_full (widget_class, "daily_row", FALSE,
                                             G_STRUCT_OFFSET (GkKeyDialog, quota_rows[GK_QUOTA_SLOT_DAILY_TOKENS]));
  gtk_widget_class_bind_template_child_full (widget_class, "minute_row", FALSE,
                                             G_STRUCT_OFFSET (GkKeyDialog, quota_rows[GK_QUOTA_SLOT_MINUTE_TOKENS]));
  gtk_widget_class_bind_template_child_full (widget_class, "rpd_row", FALSE,
                                             G_STRUCT_OFFSET (GkKeyDialog, quota_rows[GK_QUOTA_SLOT_DAILY_REQUESTS]));
  gtk_widget_class_bind_template_child_full (widget_class, "rpm_row", FALSE,
                                             G_STRUCT_OFFSET (GkKeyDialog, quota_rows[GK_QUOTA_SLOT_MINUTE_REQUESTS]));
  gtk_widget_class_bind_template_child (widget_class, GkKeyDialog, daily_spin);
  gtk_widget_class_bind_template_child (widget_class, GkKeyDialog, minute_spin);
  gtk_widget_class_bind_template_child (widget_class, GkKeyDialog, rpd_spin);
  gtk_widget_class_bind_template_child (widget_class, GkKeyDialog, rpm_spin);
  gtk_widget_class_bind_template_child (widget_class, GkKeyDialog, budget_spin);
  gtk_widget_class_bind_template_callback (widget_class, save_clicked_cb);
  gtk_widget_class_bind_template_callback (widget_class, name_changed_cb);
  gtk_widget_class_bind_template_callback (widget_class, key_changed_cb);
  gtk_widget_class_bind_template_callback (widget_class, validate_cb);
  gtk_widget_class_bind_template_callback (widget_class, entry_activated_cb);

  gtk_widget_class_add_binding_action (widget_class, GDK_KEY_Escape, 0, "window.close", NULL);
}

static void
gk_key_dialog_init (GkKeyDialog *self)
{
  GtkEditable *delegate;
  g_autoptr(GtkEntryBuffer) buffer = NULL;

  self->cancellable = g_cancellable_new ();
  gtk_widget_init_template (GTK_WIDGET (self));

  /* Keep the typed key in non-pageable memory that is wiped when freed. */
  delegate = gtk_editable_get_delegate (GTK_EDITABLE (self->key_row));
  if (GTK_IS_TEXT (delegate))
    {
      buffer = gtk_password_entry_buffer_new ();
      gtk_text_set_buffer (GTK_TEXT (delegate), buffer);
    }

  watch_focus_leave (self->name_row, G_CALLBACK (name_left_cb), self);
  watch_focus_leave (self->key_row, G_CALLBACK (key_left_cb), self);
}

GkKeyDialog *
gk_key_dialog_new (GtkWindow   *parent,
                   GkBackend   *backend,
                   const GkKey *key)
{
  GkKeyDialog *self;

  g_return_val_if_fail (GK_IS_BACKEND (backend), NULL);

  self = g_object_new (GK_TYPE_KEY_DIALOG,
                       "transient-for", parent,
                       NULL);
  self->backend = g_object_ref (backend);
  if (parent != NULL)
    g_signal_connect_object (parent, "destroy", G_CALLBACK (parent_destroyed_cb), self,
                             G_CONNECT_SWAPPED);

  if (key != NULL)
    {
      g_autofree char *masked = gk_key_get_masked (key);
      g_autofree char *hint = NULL;

      self->key = gk_key_copy (key);
      adw_window_title_set_title (self->window_title, _("Edit Key"));
      gtk_button_set_label (GTK_BUTTON (self->save_button), _("_Save"));
      adw_window_title_set_subtitle (self->window_title, key->name);
      /* Translators: %s is a masked key such as "AIza…wxyz". */
      hint = g_strdup_printf (_("Stored key: %s. Leave the field empty to keep it."), masked);
      gtk_label_set_text (GTK_LABEL (self->key_hint), hint);
      fill_from_key (self);
    }
  else
    {
      adw_window_title_set_title (self->window_title, _("Add Key"));
      gtk_button_set_label (GTK_BUTTON (self->save_button), _("_Add"));
      gtk_label_set_text (GTK_LABEL (self->key_hint),
                          _("A key from Google AI Studio, starting with “AIza” or “AQ.”. It is stored encrypted."));
    }

  /* Filling the form is not the user touching it. */
  self->name_touched = FALSE;
  self->key_touched = FALSE;
  validate (self);
  /* Typing starts in the first field, not on Cancel. */
  gtk_window_set_focus (GTK_WINDOW (self), self->name_row);

  return self;
}

void
gk_key_dialog_show_resets (GkKeyDialog *self,
                           GkKeyRow    *row)
{
  const GkKey *key;

  g_return_if_fail (GK_IS_KEY_DIALOG (self));
  g_return_if_fail (GK_IS_KEY_ROW (row));

  key = gk_key_row_get_key (row);
  for (guint slot = 0; slot < GK_QUOTA_N_SLOTS; slot++)
    {
      g_autofree char *resets = NULL;
      g_autofree char *subtitle = NULL;

      if (self->quota_rows[slot] == NULL || key->quotas[slot].limit_value <= 0)
        continue;
      resets = gk_key_row_format_reset (row, slot);
      if (resets == NULL)
        continue;
      /* Translators: %s is when the quota resets, e.g. "15:00 UTC+07, midnight PST". */
      subtitle = g_strdup_printf (_("Resets %s"), resets);
      adw_action_row_set_subtitle (ADW_ACTION_ROW (self->quota_rows[slot]), subtitle);
    }
}

gint64
gk_key_dialog_get_key_id (GkKeyDialog *self)
{
  g_return_val_if_fail (GK_IS_KEY_DIALOG (self), 0);

  return self->key != NULL ? self->key->id : 0;
}
