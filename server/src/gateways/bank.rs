//! Bank-card gateway client — placeholder until the gw-bank branch lands (same public API).

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BankSettings {
    pub merchant_id: String,
    pub api_base: String,
    pub bank_public_key: String,
}

pub struct BankClient;

impl BankClient {
    pub fn new(_settings: BankSettings, _merchant_private_key: &str, _http: reqwest::Client) -> anyhow::Result<Self> {
        anyhow::bail!("the bank client is not built in yet")
    }
}

// Never constructed (new() refuses); exists so the registry compiles before the branch lands.
#[async_trait::async_trait]
impl clinicpay::ports::Gateway for BankClient {
    fn provider(&self) -> clinicpay::payments::Provider {
        unreachable!()
    }
    fn account(&self) -> &str {
        unreachable!()
    }
    async fn create_payment(
        &self,
        _: &clinicpay::ports::CreatePayment,
    ) -> clinicpay::payments::ProviderCall<clinicpay::payments::PayAction> {
        unreachable!()
    }
    async fn query_payment(&self, _: &str) -> clinicpay::payments::ProviderCall<clinicpay::payments::TradeStatus> {
        unreachable!()
    }
    async fn close_payment(&self, _: &str) -> clinicpay::payments::ProviderCall<()> {
        unreachable!()
    }
    async fn refund(
        &self,
        _: &clinicpay::ports::RefundRequest,
    ) -> clinicpay::payments::ProviderCall<clinicpay::payments::RefundStatus> {
        unreachable!()
    }
    async fn query_refund(
        &self,
        _: &str,
        _: &str,
    ) -> clinicpay::payments::ProviderCall<clinicpay::payments::RefundStatus> {
        unreachable!()
    }
    fn owns_notification(&self, _: &clinicpay::ports::RawNotification) -> bool {
        unreachable!()
    }
    fn verify_notification(
        &self,
        _: &clinicpay::ports::RawNotification,
        _: i64,
    ) -> Result<clinicpay::payments::ProviderEvent, clinicpay::payments::Rejection> {
        unreachable!()
    }
    fn notify_reply(&self, _: bool) -> clinicpay::ports::NotifyReply {
        unreachable!()
    }
    async fn download_statement(
        &self,
        _: chrono::NaiveDate,
    ) -> clinicpay::payments::ProviderCall<clinicpay::ports::Statement> {
        unreachable!()
    }
}
