// Starts Swagger UI on this server's own OpenAPI document; nothing is fetched from anywhere else
// (validatorUrl null: no badge from the public validator).
window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
  });
});
