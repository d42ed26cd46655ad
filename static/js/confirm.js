/*
 * Ask before submitting destructive forms.
 *
 * Contract:
 *   <form data-confirm="Delete this project?">                 asks on every submit
 *   <form> ... <button type="submit" data-confirm="Cancel the execution?">   asks when that button
 *                                                                submits the form (wins over the
 *                                                                form's own question)
 * A refused question cancels the submit, and no other submit handler (e.g. upload.js) sees it:
 * the listener runs in the capture phase on document, before any listener on the form.
 */
(function () {
  "use strict";

  document.addEventListener(
    "submit",
    function (event) {
      var form = event.target;
      if (!(form instanceof HTMLFormElement)) return;
      var submitter = event.submitter;
      var question = null;
      if (submitter && submitter.hasAttribute("data-confirm")) {
        question = submitter.getAttribute("data-confirm");
      } else if (form.hasAttribute("data-confirm")) {
        question = form.getAttribute("data-confirm");
      }
      if (question === null) return;
      if (!window.confirm(question || "Are you sure?")) {
        event.preventDefault();
        event.stopImmediatePropagation();
      }
    },
    true
  );
})();
