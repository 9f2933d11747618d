"""lm-eval's transformers model, computing the LM head only from the first position a batch scores.

lm-eval's HFLM runs the LM head and a log-softmax over the vocabulary at every position of every
log-likelihood request, then keeps the continuation's positions. A multiple-choice answer or a domain
reference response is a few tokens after a prompt of tens to hundreds: most of that work is thrown away,
and on Gemma-3 (a 262k-token vocabulary) the head is most of the model's compute. transformers' causal LMs
take `logits_to_keep=n` (the last n positions only); lm-eval's own slicing (`ctx_len = inplen +
logits.shape[0] - padding_len_inp`) reads a shorter logits tensor correctly as long as it ends at the padded
end and starts at or before every row's first scored position. Scores are the same as HFLM's (tested to
float32 rounding); rolling log-likelihood (every position scored) runs as before.
"""

from __future__ import annotations

from lm_eval.models.huggingface import HFLM


class ScoredPositionsHFLM(HFLM):
    def _loglikelihood_tokens(self, requests, disable_tqdm: bool = False, override_bs=None):
        # Each request's model input, as HFLM builds it, and its first scored position in that input.
        self._first_scored = {}
        for _, context, continuation in requests:
            inp = tuple((context + continuation)[-(self.max_length + 1):][:-1])
            start = len(inp) - len(continuation)
            self._first_scored[inp] = min(start, self._first_scored.get(inp, start))
        self._input_lengths = sorted({len(inp) for inp in self._first_scored}, reverse=True)
        try:
            return super()._loglikelihood_tokens(requests, disable_tqdm=disable_tqdm, override_bs=override_bs)
        finally:
            self._first_scored, self._input_lengths = {}, []

    def _first_scored_position(self, row: list[int], padded: int) -> int:
        """The row's first scored position: that of the request whose input is the row without its right
        padding (zeros), the earliest where a row's own last tokens are zeros and several could match; 0 (every
        position) when none matches."""
        starts = [self._first_scored.get(tuple(row[:length])) for length in self._input_lengths
                  if length <= padded and not any(row[length:])]
        starts = [start for start in starts if start is not None]
        return min(starts, default=0)

    def _keeps_logits(self) -> bool:
        """Whether the model's forward takes `logits_to_keep` (transformers' causal LMs do; others run whole)."""
        if not hasattr(self, "_takes_logits_to_keep"):
            import inspect

            self._takes_logits_to_keep = "logits_to_keep" in inspect.signature(self.model.forward).parameters
        return self._takes_logits_to_keep

    def _model_call(self, inps, attn_mask=None, labels=None):
        first = getattr(self, "_first_scored", None)
        if (attn_mask is not None or labels is not None or not first or self.backend != "causal"
                or not self._keeps_logits()):
            return super()._model_call(inps, attn_mask=attn_mask, labels=labels)
        import torch

        padded = inps.shape[1]
        skip = min(self._first_scored_position(row, padded) for row in inps.tolist())
        if skip <= 0:
            return super()._model_call(inps)
        with torch.no_grad(), torch.autocast(device_type=self.device.type, dtype=self.mixed_precision_dtype,
                                             enabled=self.mixed_precision_dtype is not None):
            return self.model(inps, logits_to_keep=padded - skip).logits
