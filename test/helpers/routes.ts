/** The gateway's Responses POST routes, as clients call them (see plugins/responses-routes). */
export const RESPONSES_POST_ROUTES = [
  '/v1/responses',
  '/v1/responses/compact',
  '/responses',
  '/responses/compact',
  '/backend-api/codex/responses',
  '/backend-api/codex/responses/compact',
] as const;
