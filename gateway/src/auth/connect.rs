//! `GET /connect/{provider}/{ticket}`: starts a sign-in in the popup (302 to the provider).

use super::error::FlowError;
use super::flow::{FlowRecord, Opener};
use super::{AuthRequest, AuthService};
use crate::providers::exchange;
use crate::session::{random_token, ticket, SessionId};

impl AuthService {
    /// Verifies the ticket, records a single-use login transaction and returns the provider's
    /// authorization URL to redirect the popup to.
    pub async fn connect(
        &self,
        provider: &str,
        ticket_text: &str,
        req: &AuthRequest<'_>,
    ) -> Result<url::Url, FlowError> {
        // A Teams user reference (`t.…`) stands for a Teams user instead of a browser session.
        let teams_user = if ticket_text.starts_with(crate::teams::TEAMS_TICKET_PREFIX) {
            let user = crate::teams::TeamsService::verify_reference(&self.keys, ticket_text)
                .ok_or(FlowError::Ticket(ticket::TicketError::Invalid))?;
            Some(user)
        } else {
            None
        };
        let p = self.providers.get(provider).ok_or_else(|| FlowError::UnknownProvider(provider.to_owned()))?;
        let session = match &teams_user {
            Some(_) => crate::session::SessionId::generate().ok_or(FlowError::Random)?,
            None => self.claim_connect_ticket(p.name.as_str(), ticket_text).await?,
        };
        let resolved = p.resolve(self.providers.http()).await?;
        // Parallel sign-ins (two popups, two tabs) each get their own state: they never collide.
        let state = random_token(32).ok_or(FlowError::Random)?;
        let nonce = random_token(32).ok_or(FlowError::Random)?;
        let (challenge, verifier) = exchange::new_pkce();
        let redirect_uri = self.redirect_uri(provider);
        let url = exchange::authorization_url(p, &resolved, &redirect_uri, &state, challenge, &nonce)?;
        let opener = match req.query_param("opener").as_deref() {
            Some("office") => Opener::Office,
            Some("teams") => Opener::Teams,
            _ => Opener::Window,
        };
        let flow = FlowRecord { session, provider: p.name.clone(), pkce_verifier: verifier, nonce, opener, teams_user };
        self.store.put_flow(&state, flow).await.map_err(|_| FlowError::Store)?;
        self.metrics.observe_login(p.name.as_str(), "started");
        tracing::debug!(provider = %p.name, session = %session.log_tag(), "sign-in started");
        Ok(url)
    }

    /// The session of a connect ticket issued for `provider`, which starts one sign-in only.
    async fn claim_connect_ticket(&self, provider: &str, text: &str) -> Result<SessionId, FlowError> {
        let t = self.tickets.open_connect(text)?;
        if t.provider != provider {
            return Err(FlowError::Ticket(ticket::TicketError::Invalid));
        }
        match self.store.claim_once(&t.claim_key(), t.remaining()).await {
            Ok(true) => Ok(t.session),
            Ok(false) => Err(FlowError::Ticket(ticket::TicketError::Used)),
            Err(_) => Err(FlowError::Store),
        }
    }
}
