/*
 * Batch-file upload with progress.
 *
 * Contract (all inside the form):
 *   <form data-upload action="/projects/x/files/training" method="post" enctype="multipart/form-data">
 *     <input type="hidden" name="csrf_token" value="...">
 *     <input type="file" name="files" multiple>
 *     <div data-dropzone tabindex="0">Drop CSV files here</div>           (optional)
 *     <div data-upload-progress hidden>                                   (optional)
 *       <div class="progress"><div class="progress-bar"></div></div>     (made if missing)
 *     </div>
 *     <div data-upload-error class="alert alert-danger" hidden></div>     (optional)
 *     <button type="submit">Upload</button>
 *   </form>
 *
 * Choice: ONE request carries all the files (field "files", repeated), with the form's other
 * fields (csrf_token included). The server then accepts or rejects the batch as a whole, the
 * progress bar is simply the request's upload progress, and there is no half-uploaded batch to
 * explain. Without JavaScript the same form still posts normally.
 *
 * Submitting (or dropping files on [data-dropzone]; clicking it opens the file picker) POSTs to
 * form.action with X-CSRFToken and Accept: application/json. On 2xx the page reloads. Otherwise
 * body.error.message, and the list body.error.details.reasons when present, are shown in
 * [data-upload-error] (textContent only). Elements shown/hidden use the `hidden` attribute.
 *
 * An upload never silently replaces a file: on a 409 whose body.error.details.existing names
 * the files there already, the user is asked (window.confirm, naming them) and, if they agree,
 * the same files are sent again with overwrite=true added to form.action's query.
 */
(function () {
  "use strict";

  function csrfToken(form) {
    if (window.trainyard && window.trainyard.csrfToken) {
      var token = window.trainyard.csrfToken();
      if (token) return token;
    }
    var field = form.querySelector('input[name="csrf_token"]');
    return field ? field.value : "";
  }

  function progressBar(form) {
    var box = form.querySelector("[data-upload-progress]");
    if (!box) return null;
    var bar = box.querySelector(".progress-bar");
    if (!bar) {
      var track = document.createElement("div");
      track.className = "progress";
      track.setAttribute("role", "progressbar");
      bar = document.createElement("div");
      bar.className = "progress-bar progress-bar-striped progress-bar-animated";
      track.appendChild(bar);
      box.appendChild(track);
    }
    return { box: box, bar: bar };
  }

  function setProgress(progress, percent) {
    if (!progress) return;
    var value = Math.max(0, Math.min(100, Math.round(percent)));
    progress.bar.style.width = value + "%";
    progress.bar.textContent = value + "%";
    progress.bar.setAttribute("aria-valuenow", String(value));
    (progress.bar.closest(".progress") || progress.bar).setAttribute("aria-valuenow", String(value));
  }

  function showError(form, message, reasons) {
    var box = form.querySelector("[data-upload-error]");
    if (!box) {
      window.alert(message);
      return;
    }
    box.replaceChildren();
    var text = document.createElement("div");
    text.textContent = message;
    box.appendChild(text);
    if (Array.isArray(reasons) && reasons.length) {
      var list = document.createElement("ul");
      list.className = "mb-0";
      reasons.forEach(function (reason) {
        var item = document.createElement("li");
        item.textContent = typeof reason === "string" ? reason : JSON.stringify(reason);
        list.appendChild(item);
      });
      box.appendChild(list);
    }
    box.hidden = false;
  }

  function clearError(form) {
    var box = form.querySelector("[data-upload-error]");
    if (box) {
      box.replaceChildren();
      box.hidden = true;
    }
  }

  function setBusy(form, busy) {
    form.querySelectorAll('button, input[type="submit"], input[type="file"]').forEach(function (el) {
      el.disabled = busy;
    });
    form.setAttribute("aria-busy", busy ? "true" : "false");
  }

  function parseBody(xhr) {
    try {
      return JSON.parse(xhr.responseText);
    } catch (parseError) {
      return null;
    }
  }

  function withOverwrite(action) {
    return action + (action.indexOf("?") === -1 ? "?" : "&") + "overwrite=true";
  }

  function upload(form, files, overwrite) {
    if (!files || !files.length) {
      showError(form, "Choose at least one file to upload.");
      return;
    }
    var data = new FormData(form);
    data.delete("files");
    Array.prototype.forEach.call(files, function (file) {
      data.append("files", file, file.name);
    });

    var progress = progressBar(form);
    clearError(form);
    setBusy(form, true);
    if (progress) progress.box.hidden = false;
    setProgress(progress, 0);

    var xhr = new XMLHttpRequest();
    xhr.open("POST", overwrite ? withOverwrite(form.action) : form.action);
    xhr.setRequestHeader("X-CSRFToken", csrfToken(form));
    xhr.setRequestHeader("Accept", "application/json");
    xhr.upload.addEventListener("progress", function (event) {
      if (event.lengthComputable) setProgress(progress, (event.loaded / event.total) * 100);
    });
    xhr.addEventListener("load", function () {
      if (xhr.status >= 200 && xhr.status < 300) {
        setProgress(progress, 100);
        window.location.reload();
        return;
      }
      var body = parseBody(xhr);
      var error = body && body.error ? body.error : {};
      var message = error.message || "Upload failed (HTTP " + xhr.status + ").";
      setBusy(form, false);
      if (progress) progress.box.hidden = true;
      var existing = error.details && error.details.existing;
      if (xhr.status === 409 && !overwrite && Array.isArray(existing) && existing.length) {
        if (window.confirm("Replace " + existing.join(", ") + "? " +
                           (existing.length === 1 ? "It exists" : "They exist") + " already.")) {
          upload(form, files, true);
          return;
        }
      }
      showError(form, message, error.details && error.details.reasons);
    });
    xhr.addEventListener("error", function () {
      setBusy(form, false);
      if (progress) progress.box.hidden = true;
      showError(form, "The upload failed: the server could not be reached.");
    });
    xhr.send(data);
  }

  function bindDropzone(form, zone) {
    var input = form.querySelector('input[type="file"][name="files"]');
    function stop(event) {
      event.preventDefault();
      event.stopPropagation();
    }
    ["dragenter", "dragover"].forEach(function (name) {
      zone.addEventListener(name, function (event) {
        stop(event);
        zone.classList.add("dropzone-active");
      });
    });
    ["dragleave", "dragend"].forEach(function (name) {
      zone.addEventListener(name, function () {
        zone.classList.remove("dropzone-active");
      });
    });
    zone.addEventListener("drop", function (event) {
      stop(event);
      zone.classList.remove("dropzone-active");
      if (form.getAttribute("aria-busy") === "true") return;
      upload(form, event.dataTransfer ? event.dataTransfer.files : null);
    });
    if (input) {
      zone.addEventListener("click", function (event) {
        // The input may sit inside the zone: its own click must not re-open the picker.
        if (event.target.closest("input, label, button, a")) return;
        input.click();
      });
      zone.addEventListener("keydown", function (event) {
        if (event.key === "Enter" || event.key === " ") {
          event.preventDefault();
          input.click();
        }
      });
    }
  }

  function bind(form) {
    var input = form.querySelector('input[type="file"][name="files"]');
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      upload(form, input ? input.files : null);
    });
    form.querySelectorAll("[data-dropzone]").forEach(function (zone) {
      bindDropzone(form, zone);
    });
  }

  function init() {
    document.querySelectorAll("form[data-upload]").forEach(bind);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
