// GraphiQL against this control plane. Requests carry the headers from the
// Headers tab (an API key: {"Authorization": "Bearer atk_…"}); they are kept
// in this browser's local storage, never sent anywhere but this origin.
(function () {
  var origin = window.location.origin;
  var ws = (window.location.protocol === 'https:' ? 'wss://' : 'ws://') + window.location.host;
  var fetcher = GraphiQL.createFetcher({
    url: origin + '/graphql',
    subscriptionUrl: ws + '/graphql/ws',
  });
  var root = ReactDOM.createRoot(document.getElementById('graphiql'));
  root.render(
    React.createElement(GraphiQL, {
      fetcher: fetcher,
      shouldPersistHeaders: true,
      defaultHeaders: '{\n  "Authorization": "Bearer <an API key>"\n}',
      defaultEditorToolsVisibility: 'headers',
    })
  );
})();
