-- The delivery each running attempt was granted to (ClaimRequest.claim_id), so a claim the
-- gateway granted but could not answer is granted again when the agent asks again.
ALTER TABLE executions ADD COLUMN claim_id text;
