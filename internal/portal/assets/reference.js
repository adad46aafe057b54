// Renders an API's stored OpenAPI document with the vendored Swagger UI.
// Swagger UI's own try-it is off: calls go through the portal's try-it
// form, which sends them to the gateway with the developer's key.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  var el = document.getElementById("reference");
  if (!el || typeof SwaggerUIBundle !== "function") { return; }
  SwaggerUIBundle({
    url: el.getAttribute("data-document"),
    domNode: el,
    deepLinking: false,
    validatorUrl: null,
    supportedSubmitMethods: [],
    tryItOutEnabled: false,
    defaultModelsExpandDepth: 0,
    queryConfigEnabled: false
  });
});
