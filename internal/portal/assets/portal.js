// Tollgate portal: the few things a page does in the browser. Every page
// works without it; the Content-Security-Policy allows no other script.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("button[data-copy]").forEach(function (button) {
    button.addEventListener("click", function () {
      var field = document.getElementById(button.getAttribute("data-copy"));
      var status = document.getElementById("copy-status");
      var done = function (ok) { if (status) { status.textContent = ok ? "Copied." : "Select the key and copy it."; } };
      field.select();
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(field.value).then(function () { done(true); }, function () { done(false); });
      } else {
        done(document.execCommand && document.execCommand("copy"));
      }
    });
  });
  // Confirm destructive forms.
  document.querySelectorAll("button.danger").forEach(function (button) {
    button.addEventListener("click", function (e) {
      if (!window.confirm(button.textContent.trim() + "?")) { e.preventDefault(); }
    });
  });
});
